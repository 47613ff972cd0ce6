"""Where identity lives in real skeletons: the attack suite on MSRC-12 and KGBD (docs/leakage.md).

    python studies/leakage.py [--data_dir=../shared/data] [--attackers=fast] [--out=runs/leakage]

Audits, each with every requested attacker (fitted on train, scored on test):
  msrc12 / subject   the file's stored split (repetition k % 3 == 2 tests): closed-set re-ID.
  kgbd / subject     each person's last walk tests, the other walks train: closed-set re-ID.
  kgbd / gender      a third of the people (stratified by gender) test: gender across people.
and each again after bone retargeting (every bone set to the training split's median length,
data.transforms.retarget), which removes body proportions and leaves motion style: the drop from
the original to the retargeted column is what proportions carried, what remains is what motion
carries; and with the training labels shuffled (every attacker must fall to chance: proof that
none sees a test label). --variants picks among the three.

Writes OUT/leakage.json (every row) and OUT/leakage_tables.md (the tables docs/leakage.md
quotes) and prints the tables. The data files are real people's recordings: they are read from
--data_dir and never copied; when absent, that audit is skipped and says so.
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

from skeleton_anon.attacks import data as attack_data, suite  # noqa: E402
from skeleton_anon.data import transforms  # noqa: E402
from skeleton_anon.data.dataset import load_npz  # noqa: E402
from skeleton_anon.evaluate.report import write_json  # noqa: E402


def shuffled(train: attack_data.AttackData, seed: int = 0) -> attack_data.AttackData:
  """The training side with its target labels (and the people linkage pairs by) permuted:
  what the privacy attackers score when the training data carry no signal."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(train))
  return dataclasses.replace(train, privacy=train.privacy[order], subject=train.subject[order])


def retargeted(train: attack_data.AttackData, test: attack_data.AttackData, layout):
  """Both sides with every bone at the training side's median length (direction kept)."""
  medians = transforms.median_bone_lengths(train.x, train.lengths, layout)
  move = lambda side: dataclasses.replace(
      side, x=transforms.retarget(side.x, side.lengths, layout, medians))
  return move(train), move(test)


AUDITS = (
    # (name, file, privacy_target, split rule (data/splits.py), test_fraction)
    ('msrc12/subject', 'msrc12.npz', 'subject', 'file', 0.2),
    ('kgbd/subject', 'kgbd_dev.npz', 'subject', 'last_per_subject', 0.2),
    ('kgbd/gender', 'kgbd_dev.npz', 'gender', 'by_subject', 1 / 3),
)


VARIANTS = ('original', 'retargeted', 'shuffled')
DESCRIPTIONS = {'last_per_subject': 'last walk of each person', 'file': "the file's stored split",
                'by_subject': 'a third of the people held out'}


def run_audit(name, path, target, rule, test_fraction, attackers, seed, variants=VARIANTS):
  ds = load_npz(path)
  train, test, split = attack_data.attack_split(ds, target, rule, seed=seed,
                                                test_fraction=test_fraction, path=path)
  split['description'] = DESCRIPTIONS.get(rule, rule)
  layout = ds.get_layout()
  out = {}
  sides = {'original': lambda: (train, test),
           'retargeted': lambda: retargeted(train, test, layout),
           'shuffled': lambda: (shuffled(train, seed), test)}
  for variant in variants:
    tr, te = sides[variant]()
    start = time.time()
    result = suite.run_suite(tr, te, privacy_target=target, layout=layout,
                             attackers=attackers, seed=seed, log=lambda line: None)
    result['split'] = split
    result['seconds'] = round(time.time() - start, 1)
    out[variant] = result
    print(f'{name} {variant}: {result["seconds"]} s', file=sys.stderr)
  return out


def _fmt(row):
  if row is None or row['value'] is None:
    return '-'
  return f'{row["value"]:.3f} [{row["ci"][0]:.3f}, {row["ci"][1]:.3f}]'


def tables(results: dict) -> str:
  """Markdown: per audit, attacker x (privacy headline, action top-1), original vs retargeted."""
  lines = []
  for name, variants in results.items():
    target = name.split('/')[1]
    metric = suite.HEADLINE[target]
    orig = variants['original']
    split = orig['split']
    lines += [f'### {name}', '',
              f'Split: {split["description"]} ({split["num_train"]} train / '
              f'{split["num_test"]} test sequences, '
              f'{"across people" if split["across_people"] else "closed set"}). '
              f'Privacy metric: {metric}; chance {orig["chance"]["privacy"]:.3f}'
              + (' (balanced accuracy chance 0.5)' if target == 'gender' else '')
              + (f'; action chance {orig["chance"]["action"]:.3f}.'
                 if 'action' in orig['strongest'] and orig['strongest']['action'] else '.'),
              '', '| attacker | privacy, original | privacy, retargeted | privacy, shuffled '
              'train labels | action, original | action, retargeted |',
              '|---|---|---|---|---|---|']
    def pick(result, attacker, task, m):
      if result is None:
        return None
      rows = [r for r in result['attacks'] if r['attacker'] == attacker and r['task'] == task
              and r['metric'] == m]
      return rows[0] if rows else None
    for attacker in orig['attackers']:
      m = 'auc' if attacker == 'linkage' else metric
      cells = [pick(variants.get(v), attacker, 'privacy', m)
               for v in ('original', 'retargeted', 'shuffled')]
      cells += [pick(variants.get(v), attacker, 'action', 'top1')
                for v in ('original', 'retargeted')]
      label = attacker + (' (AUC)' if attacker == 'linkage' else '')
      lines.append(f'| {label} | ' + ' | '.join(_fmt(c) for c in cells) + ' |')
    for v in ('original', 'retargeted'):
      if v not in variants:
        continue
      best = variants[v]['strongest']['privacy']
      lines.append(f'\nStrongest privacy attacker, {v}: `{best["attacker"]}` '
                   f'{best["metric"]} {best["value"]:.3f}.')
    lines.append('')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--attackers', default='fast')
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'leakage'))
  parser.add_argument('--only', default='', help='comma list of audit names to run')
  parser.add_argument('--variants', default=','.join(VARIANTS),
                      help='comma list of original, retargeted, shuffled')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  results = {}
  for name, file, target, rule, fraction in AUDITS:
    if args.only and name not in args.only.split(','):
      continue
    path = os.path.join(args.data_dir, file)
    if not os.path.exists(path):
      print(f'skipping {name}: {path} not found (see ../shared/data/README.md)', file=sys.stderr)
      continue
    results[name] = run_audit(name, path, target, rule, fraction, args.attackers, args.seed,
                              args.variants.split(','))
  if not results:
    print('no data found; nothing to do', file=sys.stderr)
    return 0
  os.makedirs(args.out, exist_ok=True)
  write_json(results, os.path.join(args.out, 'leakage.json'))
  text = tables(results)
  with open(os.path.join(args.out, 'leakage_tables.md'), 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
