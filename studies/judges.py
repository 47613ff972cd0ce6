"""Do the judges learn? Each network of a config, trained on the original data, against the suite.

    python studies/judges.py [--data_dir=../shared/data] [--out=runs/judges]
        [--cases=msrc12_subject,msrc12_10p_subject,kgbd_gender] [--config=recommended.py]
        [--seeds=0,1,2] [--extra=--config.pretrain.action.min_steps=600 ...]

A privacy report is only as good as its networks: a held-out classifier that never learned the
original data reads "at chance" on anonymized data too, which looks like privacy and means
nothing. For every case this trains the config's action and privacy networks (the architecture
of config.classifiers.<task>, with config.pretrain.<task>) for each seed on the original training
split, scores them on the original test split, and sets them beside the attack suite's best
feature attacker fitted on the same split. Rows are mean +- spread (max - min) over the seeds and
the people-level 95% interval of the mean member (cluster bootstrap over test people).

Writes OUT/judges.json and OUT/judges.md. The data files are real people's: read from
--data_dir, never copied (the 10-person subset is made under runs/data by studies/subsets.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'studies'))
sys.path.insert(0, os.path.join(ROOT, 'configs'))

from cases import CASES, case_path  # noqa: E402


def _config(name: str, path: str, target: str, overrides: list[str]):
  import importlib
  from ml_collections import config_flags  # noqa: F401  (same parser as the command line)
  module = importlib.import_module(os.path.splitext(name)[0])
  config = module.get_config()
  config.data.path = path
  config.data.privacy_target = target
  for item in overrides:
    key, value = item.removeprefix('--config.').split('=', 1)
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = type(node[leaf])(json.loads(value)) if not isinstance(node[leaf], str) else value
  return config


def study_case(case: str, config_name: str, seeds: list[int], data_dir: str,
               extra: list[str]) -> dict | None:
  from skeleton_anon.attacks import suite
  from skeleton_anon.evaluate import metrics
  from skeleton_anon.pipeline import attack_evaluation
  from skeleton_anon.pipeline.context import make_run
  path = case_path(case, data_dir)
  if path is None:
    print(f'{case}: data not found, skipped')
    return None
  _, target, overrides = CASES[case]
  config = _config(config_name, path, target, [o for o in overrides + extra
                                               if o.startswith('--config.')])
  out = {'case': case, 'config': config_name, 'extra': extra, 'seeds': seeds, 'tasks': {}}
  with tempfile.TemporaryDirectory() as workdir:
    run = make_run(config, workdir)
    data = run.data
    result = suite.run_suite(
        attack_evaluation._side(data.train, data.privacy_train, data.train.x),
        attack_evaluation._side(data.test, data.privacy_test, data.test.x),
        privacy_target=data.privacy_target, layout=data.layout, attackers='fast', seed=0,
        log=lambda line: None)
    for task in run.tasks:
      labels_train = data.train.action if task == 'action' else data.privacy_train
      labels_test = data.test.action if task == 'action' else data.privacy_test
      num_classes = data.num_actions if task == 'action' else data.num_privacy
      arch = config.classifiers[task].arch
      start = time.time()
      bank = run.banks.train(arch, labels_train, num_classes, seeds, data.train.x,
                             data.train.lengths, task=task, role='holdout_seed',
                             name=f'judge_{task}')
      seconds = time.time() - start
      logits = run.banks.predict_logits(bank, data.test.x, data.test.lengths)
      top1 = [float(metrics.topk_accuracy(lg, labels_test, 1)) for lg in logits]
      hits = np.mean([metrics.topk_hits(lg, labels_test, 1) for lg in logits], axis=0)
      ci = metrics.bootstrap_ci(lambda weights: metrics.weighted_mean(hits, weights),
                                len(hits), groups=data.test.subject, seed=0)
      best = max((r for r in result['attacks'] if r['task'] == task and r['metric'] == 'top1'),
                 key=lambda r: r['value'])
      train_cfg = config.pretrain[task]
      out['tasks'][task] = {
          'arch': arch, 'top1': top1, 'mean': float(np.mean(top1)),
          'spread': float(np.max(top1) - np.min(top1)), 'ci_people': ci,
          'suite_best': {'attacker': best['attacker'], 'value': best['value']},
          'chance': float(result['chance'][task]), 'train_seconds': round(seconds, 1),
          'validation': bank.validation,
          'steps': int(bank.history[-1]['step']) if bank.history else None,
          'min_steps': int(train_cfg.get('min_steps', 0)),
          'val_fraction': float(train_cfg.get('val_fraction', 0.0))}
      print(f"{case} {task} {arch}: {np.mean(top1):.3f} +- {np.ptp(top1):.3f} "
            f"(seeds {['%.3f' % v for v in top1]}; suite best {best['attacker']} "
            f"{best['value']:.3f}; chance {result['chance'][task]:.3f}; {seconds:.0f} s)",
            flush=True)
    run.io.close()
  return out


def table(rows: list[dict]) -> str:
  lines = ['| case | task | network | steps | original top-1, mean +- spread (seeds) | '
           '95% CI by people | suite best | chance | within 5 points |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in rows:
    for task, t in r['tasks'].items():
      gap = t['suite_best']['value'] - t['mean']
      lines.append(
          f"| {r['case']} | {task} | {t['arch']} | {t['steps']} | {100 * t['mean']:.1f} +- "
          f"{100 * t['spread']:.1f} ({', '.join(f'{100 * v:.1f}' for v in t['top1'])}) | "
          f"[{100 * t['ci_people'][0]:.1f}, {100 * t['ci_people'][1]:.1f}] | "
          f"{t['suite_best']['attacker']} {100 * t['suite_best']['value']:.1f} | "
          f"{100 * t['chance']:.1f} | {'yes' if gap <= 0.05 else f'no ({100 * gap:.1f})'} |")
  return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'judges'))
  parser.add_argument('--cases', default='msrc12_10p_subject,msrc12_subject,kgbd_gender')
  parser.add_argument('--config', default='recommended.py')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--extra', action='append', default=[],
                      help='one more --config.KEY=VALUE override (repeatable)')
  parser.add_argument('--tag', default='', help='suffix of the output files')
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(',')]
  rows = [r for r in (study_case(c, args.config, seeds, args.data_dir, args.extra)
                      for c in args.cases.split(',')) if r]
  os.makedirs(args.out, exist_ok=True)
  suffix = f'_{args.tag}' if args.tag else ''
  with open(os.path.join(args.out, f'judges{suffix}.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  text = table(rows)
  with open(os.path.join(args.out, f'judges{suffix}.md'), 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  main()
