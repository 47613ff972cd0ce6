"""Does a release of K draws per input train better recognizers? (export.draws, docs/privacy.md)

    python studies/draws.py [--data_dir=../shared/data] [--cases=msrc12_subject]
        [--draws=1,3] [--archs=sgn] [--seeds=1] [--out=runs/draws]

For each case: configs/recommended.py's flow prior is fitted on the training split (the
pipeline's anonymize stage, in OUT/CASE/run), then for each K the training split is released
as K independent draws per sequence (Anonymizer.redrawn, what export.draws writes) and

  - each network of `--archs` (the recommended config's sizes and training settings: `sgn`,
    `stgcn`) is trained on those K*N sequences with the action labels and tested on the
    ORIGINAL test split (train on the release, apply to real people), `--seeds` seeds, beside
    the same network trained on the original training split;
  - the suite's fast feature attackers are fitted on them: action scored on the original test
    split (the suite's train-on-anonymized), identity on the anonymized test split (does a
    larger release help the attacker?).

The data files are real people's recordings: read from --data_dir, never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'studies'))
sys.path.insert(0, os.path.join(ROOT, 'configs'))

from cases import CASES, present_cases  # noqa: E402


def _config(case: str, path: str, settings: tuple[str, ...] = ()):
  """configs/recommended.py for `case`, with the case's overrides and then `settings`
  ('anonymize.min_steps=20000': a key of the config and a value of that key's type)."""
  import recommended  # configs/recommended.py
  _, target, overrides = CASES[case]
  c = recommended.get_config()
  c.data.path, c.data.privacy_target = path, target
  for item in [o[len('--config.'):] for o in overrides] + list(settings):
    key, value = item.split('=', 1)            # 'data.split_rule=by_subject'
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = type(node[leaf])(value)
  return c


def _side(ds, privacy, x, repeat: int = 1):
  from skeleton_anon.attacks.data import AttackData
  tile = (lambda a: None if a is None else np.tile(np.asarray(a), repeat))
  return AttackData(x=x, lengths=tile(ds.lengths), privacy=tile(privacy),
                    action=tile(ds.action), subject=tile(ds.subject))


def _fast_suite(data, train_side, test_x) -> dict:
  """The suite's fast feature attackers (no linkage) fitted on train_side and scored on the
  test split with skeletons test_x (the original, or its release)."""
  from skeleton_anon.attacks import suite
  return suite.run_suite(train_side, _side(data.test, data.privacy_test, test_x),
                         privacy_target=data.privacy_target, layout=data.layout,
                         attackers=[n for n in suite.FAST if n != 'linkage'],
                         num_bootstrap=50, log=lambda line: None)


def study_case(case: str, path: str, out: str, draws: list[int], seeds: list[int],
               archs: list[str]) -> dict:
  from skeleton_anon.pipeline import context, stages
  config = _config(case, path)
  run = context.make_run(config, os.path.join(out, case, 'run'))
  stages.anonymize_stage(run)                 # fits (or reloads) the flow prior
  data, batch = run.data, int(config.evaluate.batch_size)
  anon_test = run.anonymizer.apply(data.test.x, data.test.lengths, mesh=run.mesh,
                                   batch_size=batch)
  def on_real_people(x, labels, lengths, name):
    found = {}
    for arch in archs:
      bank = run.banks.train(arch, labels, data.num_actions, tuple(seeds), x, lengths,
                             task='action', role='retrained', name=f'{name}_{arch}')
      logits = run.banks.predict_logits(bank, data.test.x, data.test.lengths)
      found[arch] = [float(np.mean(np.argmax(l, -1) == data.test.action)) for l in logits]
    return found

  released = []
  rows = {'original': {'train_original_test_original': on_real_people(
      data.train.x, data.train.action, data.train.lengths, 'original')}}
  print(f"{case} original: {json.dumps(rows['original'])}", flush=True)
  for k in range(max(draws)):
    released.append(run.anonymizer.redrawn(k).apply(data.train.x, data.train.lengths,
                                                    mesh=run.mesh, batch_size=batch))
    count = k + 1
    if count not in draws:
      continue
    x = np.concatenate(released)
    labels = np.tile(data.train.action, count)
    lengths = np.tile(data.train.lengths, count)
    networks = on_real_people(x, labels, lengths, f'draws{count}')
    released_side = _side(data.train, data.privacy_train, x, count)
    on_real = _fast_suite(data, released_side, data.test.x)
    on_release = _fast_suite(data, released_side, anon_test)
    rows[count] = {
        'networks_train_release_test_original': networks,
        'suite_train_release_test_original': on_real['strongest']['action']['value'],
        'suite_attacker': on_real['strongest']['action']['attacker'],
        'identity_strongest_on_release': on_release['strongest']['privacy']['value'],
        'chance': on_release['strongest']['privacy']['chance'],
        'train_sequences': int(len(x)),
    }
    print(f'{case} K={count}: {json.dumps(rows[count])}', flush=True)
  run.io.close()
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--cases', default='msrc12_subject')
  parser.add_argument('--draws', default='1,3')
  parser.add_argument('--archs', default='sgn')
  parser.add_argument('--seeds', type=int, default=1)
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'draws'))
  args = parser.parse_args()
  draws = sorted({int(d) for d in args.draws.split(',')})
  results = {}
  for case, path in present_cases(args.cases, args.data_dir):
    results[case] = study_case(case, path, args.out, draws, list(range(300, 300 + args.seeds)),
                               args.archs.split(','))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, 'draws.json'), 'w') as f:
    json.dump(results, f, indent=1)
  def ms(values):
    return ', '.join(f'{100 * v:.1f}' for v in values)
  for case, rows in results.items():
    base = rows.pop('original')['train_original_test_original']
    print(f'\n{case}\n| K | trained on the release, tested on the original (trained on the '
          f'original) | suite: same (attacker) | identity, strongest on the release (chance) | '
          f'training sequences |\n|---|---|---|---|---|')
    for k, r in rows.items():
      nets = '; '.join(f'{arch} {ms(v)} ({ms(base[arch])})'
                       for arch, v in r['networks_train_release_test_original'].items())
      print(f"| {k} | {nets} | {100 * r['suite_train_release_test_original']:.1f} "
            f"({r['suite_attacker']}) | {100 * r['identity_strongest_on_release']:.1f} "
            f"({100 * r['chance']:.1f}) | {r['train_sequences']} |")

if __name__ == '__main__':
  main()
