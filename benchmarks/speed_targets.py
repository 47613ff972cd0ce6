"""Issue 13 item 6 in one command: the min step against the PyTorch reference and the matmul rate,
and the mapped ensemble against a loop, in alternating rounds of one run.

  python benchmarks/speed_targets.py --json OUT.json --reference_dir /path/to/skeleton-anonymization \
      [--torch_python PYTHON] [--rounds 3]

Each round measures, one process each (benchmarks/run.py's `ours` and `reference`): our min step
(residual MLP -> frozen MS-G3D action + MS-G3D privacy, batch 8, T=64), the reference's same step,
XLA's 2048x2048 float32 matmul, and the 3a3p ensemble min step (batch 8, T=32) as `map` and as a
loop. Alternating rounds put both sides of every ratio under the same load; the output has every
measurement and, per round, the three ratios the issue sets targets for (3x the reference, 50% of
the matmul rate, map / loop >= 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)
from benchmarks import run as bench_run  # noqa: E402


def one_round(args, index: int) -> dict:
  load = os.getloadavg()[0]
  step = dict(batch=8, frames=64, warmup=1, repeats=args.repeats)
  mine = bench_run.ours('min_step', args.timeout_s, **step)
  ref = bench_run.reference(args, 'min_step', args.timeout_s * 3, **step)
  matmul = bench_run.ours('matmul_f32', args.timeout_s, warmup=1, repeats=5)
  ensemble = dict(batch=8, frames=32, warmup=1, repeats=args.repeats)
  mapped = bench_run.ours('ensemble_min_step_map', args.timeout_s, **ensemble)
  loop = bench_run.ours('ensemble_min_step_loop', args.timeout_s, **ensemble)
  speed = lambda result: result.get('samples_per_s')
  summary = {
      'round': index, 'load_before': load, 'load_after': os.getloadavg()[0],
      'min_step_vs_reference': bench_run.ratio(speed(mine), speed(ref)),
      'min_step_fraction_of_matmul': bench_run.ratio(mine.get('gflop_per_s'),
                                                     matmul.get('gflop_per_s')),
      'ensemble_map_vs_loop': bench_run.ratio(speed(mapped), speed(loop)),
  }
  bench_run.log(f'round {index}: ' + ', '.join(
      f'{k}={v:.3f}' for k, v in summary.items() if isinstance(v, float)))
  return {'summary': summary, 'measurements': [mine, ref, matmul, mapped, loop]}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--json', required=True)
  parser.add_argument('--reference_dir', required=True)
  parser.add_argument('--torch_python', default=sys.executable)
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--reference_omp_wait_policy', default='PASSIVE')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--timeout_s', type=float, default=600)
  parser.set_defaults(quick=False)    # what run.environment reads
  args = parser.parse_args(argv)
  started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
  rounds = []
  for index in range(args.rounds):
    rounds.append(one_round(args, index))
    payload = {'started': started, 'environment': bench_run.environment(args), 'rounds': rounds}
    bench_run.write_json_atomic(args.json, payload)   # after every round: nothing lost


if __name__ == '__main__':
  main()
