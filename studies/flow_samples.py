"""How close are the flow prior's draws to real performances? (issue 21; seconds per variant)

    python studies/flow_samples.py [--data_dir=../shared/data] [--cases=msrc12_subject]
        [--variants="whiten=1.0;whiten=0.0"] [--out=runs/flow_samples]

A recognizer trained on the release is only as good as the release's performances, and the
train-on-release measurement (studies/utility_ladder.py) costs minutes per seed and spreads by
several points from seed to seed. This study looks at the draws themselves, in the coordinates
the flow draws in (the encoding minus its action's mean, in the shared subspace, unscaled: the
direction encoding's own metric). For each variant of the recommended flow prior's knobs
(`;`-separated, each `knob=value,...`), the flow is fitted on the training split and every
training sequence gets one draw of its action (labels, not predictions: p(x | a) itself); then

  dist_draws    median distance from a draw to its nearest training performance; the yardstick
                is dist_test, the same for the real test split's performances: a draw farther
                from every real performance than a new real one is off the data's manifold;
  nn_draws      1-nearest-neighbour action accuracy, fitted on the draws and scored on the real
                test split (train on the release, apply to real people, with the simplest
                learner), beside nn_real, fitted on the real training split;
  self_draws    the same learner fitted on half the draws and scored on the other half (how
                separable the actions are in the release), beside self_real;
  std_ratio     median over directions of the draws' spread over the training spread.

The data files are real people's recordings: read from --data_dir, never copied. Nothing of a
person is printed; every figure is an aggregate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'studies'))

from cases import parse_knobs, present_cases, save_results  # noqa: E402
from draws import _config  # noqa: E402


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(index into b of each row of a's nearest row, its distance)."""
  d = (a ** 2).sum(1)[:, None] - 2.0 * a @ b.T + (b ** 2).sum(1)[None]
  best = np.argmin(d, axis=1)
  return best, np.sqrt(np.maximum(d[np.arange(len(a)), best], 0.0))


def _nn_accuracy(train: np.ndarray, labels: np.ndarray, test: np.ndarray, truth: np.ndarray):
  return float(np.mean(labels[_nearest(test, train)[0]] == truth))


def sample_quality(draws: np.ndarray, real: np.ndarray, real_rows: np.ndarray,
                   test: np.ndarray, test_rows: np.ndarray) -> dict:
  """The module docstring's figures for draws [N, K] of the actions real_rows (one per training
  performance real [N, K]), against the test performances test [M, K] of test_rows."""
  return {
      'dist_draws': float(np.median(_nearest(draws, real)[1])),
      'dist_test': float(np.median(_nearest(test, real)[1])),
      'nn_draws': _nn_accuracy(draws, real_rows, test, test_rows),
      'nn_real': _nn_accuracy(real, real_rows, test, test_rows),
      'self_draws': _nn_accuracy(draws[::2], real_rows[::2], draws[1::2], real_rows[1::2]),
      'self_real': _nn_accuracy(real[::2], real_rows[::2], real[1::2], real_rows[1::2]),
      'std_ratio': float(np.median(draws.std(0) / np.maximum(real.std(0), 1e-12)))}


def study_case(case: str, path: str, out: str, variants: list[dict]) -> list[dict]:
  from skeleton_anon.pipeline import context
  from skeleton_anon.train import flow_prior as flow_train
  config = _config(case, path)
  run = context.make_run(config, os.path.join(out, case, 'data'))   # loads the data only
  data, rows_out = run.data, []
  for i, knobs in enumerate(variants):
    merged = {**config.anonymizer.knobs.to_dict(), **knobs}
    flow, _ = flow_train.fit_flow_prior(
        data.train.x, data.train.lengths, data.train.action, data.train.subject, data.layout,
        merged, config.anonymize, mesh=run.mesh,
        checkpoint_dir=os.path.join(out, case, f'variant{i}'), seed=int(config.anonymizer.seed))
    prior = flow.prior
    coords = {}
    for name, split in (('train', data.train), ('test', data.test)):
      coords[name] = flow_train.training_coordinates(
          prior, np.asarray(split.x, np.float32), split.lengths, split.action, data.layout)
    z, rows, lengths = coords['train']
    seeds = [[int(config.anonymizer.seed), 7, j] for j in range(len(z))]
    encodings = flow.generate(rows, lengths, seeds)
    draws = (encodings - prior.mean[rows]) @ prior.basis[0]
    # Whole encodings (the action's mean included), as a recognizer sees them.
    mean_in_subspace = prior.mean @ prior.basis[0]
    test_z, test_rows, _ = coords['test']
    found = sample_quality(draws + mean_in_subspace[rows], z + mean_in_subspace[rows], rows,
                           test_z + mean_in_subspace[test_rows], test_rows)
    found = {'knobs': knobs, **{k: round(v, 4) for k, v in found.items()}}
    print(f'{case} {json.dumps(found)}', flush=True)
    rows_out.append(found)
  run.io.close()
  return rows_out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--cases', default='msrc12_subject')
  parser.add_argument('--variants', default='whiten=1.0;whiten=0.5;whiten=0.0')
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'flow_samples'))
  args = parser.parse_args()
  results = {case: study_case(case, path, args.out, [parse_knobs(v) for v in args.variants.split(';')])
             for case, path in present_cases(args.cases, args.data_dir)}
  save_results(args.out, 'flow_samples.json', results)
  for case, rows in results.items():
    print(f'\n{case}\n| knobs | dist draws (test) | 1-NN on draws (real) | draws self (real) '
          f'| std ratio |\n|---|---|---|---|---|')
    for r in rows:
      print(f"| {r['knobs']} | {r['dist_draws']:.2f} ({r['dist_test']:.2f}) | "
            f"{100 * r['nn_draws']:.1f} ({100 * r['nn_real']:.1f}) | "
            f"{100 * r['self_draws']:.1f} ({100 * r['self_real']:.1f}) | {r['std_ratio']:.2f} |")


if __name__ == '__main__':
  main()
