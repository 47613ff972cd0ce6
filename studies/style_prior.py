"""The style prior's privacy-utility frontier over `keep_style` on real people (docs/privacy.md).

    python studies/style_prior.py [--data_dir=../shared/data] [--out=runs/style_prior]
        [--keep=0,0.2,0.5,inf] [--components=96] [--only=msrc12/subject,kgbd/subject,kgbd/gender]

For each audit (the splits of studies/transforms.py) the package's style prior
(train/style_prior.py, models/style_prior.py) is fitted on the training split and applied to
every sample; every attacker of the suite ('fast') is refitted on the anonymized training side and
scored on the anonymized test side. keep_style = 0 (the recommended setting) redraws every
direction; a larger value keeps the input's directions whose between-person share of variance is
below it; inf keeps them all (the input projected on its action's principal subspace: what the
front end and the subspace alone do). A last row, `duration only`, is the best the suite does
from the sequence length alone (a 1-NN and a logistic regression on log-duration): what the
style prior leaks by keeping the input's duration.

Also per row: train-on-anonymized / test-on-original action top-1 (the suite's six feature
attackers, original test data as recorded and with bones retargeted to the prior's lengths),
within-action diversity, fidelity. Writes OUT/style_prior.json and OUT/style_prior_tables.md.

The data files are real people's recordings: read from --data_dir, never copied; a missing file
skips its audits and says so. About 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'studies'))

import transforms as study_transforms  # noqa: E402  (studies/transforms.py: splits, scoring)
from skeleton_anon.attacks import suite  # noqa: E402
from skeleton_anon.attacks.data import AttackData  # noqa: E402
from skeleton_anon.data import splits, transforms  # noqa: E402
from skeleton_anon.data.dataset import load_npz  # noqa: E402
from skeleton_anon.evaluate.fidelity import fidelity  # noqa: E402
from skeleton_anon.evaluate.report import write_json  # noqa: E402
from skeleton_anon.evaluate.utility import within_action_diversity  # noqa: E402
from skeleton_anon.models import linear, style_prior  # noqa: E402
from skeleton_anon.train.style_prior import fit_style_prior  # noqa: E402


def duration_only(lengths, labels, train, test):
  """Best top-1 of 1-NN and logistic regression on log-duration alone."""
  f = np.log(np.maximum(lengths, 1)).astype(np.float32)[:, None]
  k = int(labels.max()) + 1
  nn = linear.nearest_neighbour_scores(f[train], labels[train], f[test], k, metric='euclidean')
  lr = linear.LogisticRegression.fit(f[train], labels[train], k).scores(f[test])
  return max(float((s.argmax(1) == labels[test]).mean()) for s in (nn, lr))


def run_audit(name, path, target, rule, fraction, keeps, components, seed):
  ds = load_npz(path)
  layout = ds.get_layout()
  split = splits.make_split(ds, rule, seed=seed, test_fraction=fraction, privacy_target=target)
  train, test = split == 0, split == 1
  lengths, privacy, action = ds.lengths, ds.privacy_labels(target), ds.action
  multi = len(np.unique(action[train])) > 1
  t0 = time.time()
  prior = fit_style_prior(ds.x[train], lengths[train], action[train], ds.subject[train], layout,
                          components=components, seed=seed)
  fit_seconds = time.time() - t0
  orig_ret = transforms.retarget(ds.x, lengths, layout, prior.bone_lengths)
  out = {'split': {'rule': rule, 'num_train': int(train.sum()), 'num_test': int(test.sum())},
         'fit_seconds': round(fit_seconds, 1), 'frames': prior.frames, 'rows': {}}
  for keep in keeps:
    t0 = time.time()
    x = style_prior.anonymize(dataclasses.replace(prior, keep_style=float(keep)), ds.x, lengths,
                              layout)
    side = lambda m: AttackData(x=x[m], lengths=lengths[m], privacy=privacy[m],
                                action=action[m], subject=ds.subject[m])
    res = suite.run_suite(side(train), side(test), privacy_target=target, layout=layout,
                          attackers='fast', seed=seed, log=lambda line: None)
    row = {'strongest': res['strongest'], 'chance': res['chance']}
    if target == 'gender':
      row['best_auc'] = study_transforms.best_of(
          [r for r in res['attacks'] if r['attacker'] != 'linkage'], 'auc')
    if multi:
      tto = study_transforms.feature_rows(
          x[train], lengths[train], action[train],
          {'original': (ds.x[test], lengths[test], action[test]),
           'original_retargeted': (orig_ret[test], lengths[test], action[test])}, layout, seed)
      row['train_anonymized_test_original'] = {
          k: study_transforms.best_of(v, 'top1')['value'] for k, v in tto.items()}
    row['diversity_ratio'] = within_action_diversity(
        ds.x[test], x[test], lengths[test], action[test], layout, prior.bone_lengths,
        seed=seed)['ratio']
    row['fidelity'] = fidelity(ds.x[test], x[test], lengths[test], layout)
    row['seconds'] = round(time.time() - t0, 1)
    out['rows'][str(keep)] = row
    s = res['strongest']
    print(f'{name} keep_style={keep}: privacy {s["privacy"]["attacker"]} '
          f'{s["privacy"]["value"]:.3f}' + (f' AUC {row["best_auc"]["value"]:.3f}'
                                            if 'best_auc' in row else '')
          + (f', action {s["action"]["value"]:.3f}' if s.get('action') else '')
          + f', diversity {row["diversity_ratio"]:.3f} ({row["seconds"]} s)', flush=True)
  out['duration_only'] = duration_only(lengths, privacy, train, test)
  return out


def tables(results):
  lines = []
  for name, res in results.items():
    first = next(iter(res['rows'].values()))
    gender = name.endswith('gender')
    lines += [f'### {name}', '', f'Split {res["split"]["rule"]} ({res["split"]["num_train"]} '
              f'train / {res["split"]["num_test"]} test); privacy chance '
              f'{first["chance"]["privacy"]:.3f}; fit {res["fit_seconds"]} s; '
              f'{res["frames"]} encoding frames. From duration alone: '
              f'{res["duration_only"]:.3f}.', '',
              '| keep_style | privacy, strongest retrained (attacker) | '
              + ('best gender ROC AUC | ' if gender else '')
              + 'action, strongest retrained | train anonymized, test original (as recorded / '
              'retargeted) | diversity | RMSE (m) | MPJPE (m) | bone std (m) | jitter ratio |',
              '|' + '---|' * (10 if gender else 9)]
    for keep, r in res['rows'].items():
      s, f = r['strongest'], r['fidelity']
      tto = r.get('train_anonymized_test_original')
      cells = [keep, f'{s["privacy"]["value"]:.3f} (`{s["privacy"]["attacker"]}`)']
      if gender:
        cells.append(f'{r["best_auc"]["value"]:.3f}')
      cells += [f'{s["action"]["value"]:.3f}' if s.get('action') else '-',
                f'{tto["original"]:.3f} / {tto["original_retargeted"]:.3f}' if tto else '-',
                f'{r["diversity_ratio"]:.3f}', f'{f["rmse"]:.3f}', f'{f["mpjpe"]:.3f}',
                f'{f["bone_std_changed"]:.4f}', f'{f["jitter_ratio"]:.2f}']
      lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'style_prior'))
  parser.add_argument('--keep', default='0,0.2,0.5,inf')
  parser.add_argument('--components', type=int, default=96)
  parser.add_argument('--only', default='')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  keeps = [float(k) for k in args.keep.split(',')]
  results = {}
  for name, file, target, rule, fraction, _ in study_transforms.AUDITS:
    if args.only and name not in args.only.split(','):
      continue
    path = os.path.join(args.data_dir, file)
    if not os.path.exists(path):
      print(f'skipping {name}: {path} not found (see ../shared/data/README.md)', file=sys.stderr)
      continue
    results[name] = run_audit(name, path, target, rule, fraction, keeps, args.components,
                              args.seed)
  if not results:
    print('no data found; nothing to do', file=sys.stderr)
    return 0
  os.makedirs(args.out, exist_ok=True)
  write_json({**results, '_meta': {'command': 'python studies/style_prior.py',
                                   'components': args.components, 'seed': args.seed}},
             os.path.join(args.out, 'style_prior.json'))
  text = tables(results)
  with open(os.path.join(args.out, 'style_prior_tables.md'), 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
