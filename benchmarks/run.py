"""One command for every benchmark of issue 6, optionally side by side with the PyTorch reference.

  python benchmarks/run.py [--quick] --json OUT.json [--reference_dir DIR] [--models NAME ...]

Each training-step measurement runs in its own process (benchmarks/jax_steps.py, or
benchmarks/reference_torch.py under the torch interpreter `--torch_python`), so its peak RSS is its
own; so does each classifier's eval forward and train forward+backward (benchmarks/model_bench.py,
named `model_forward` / `model_fwd_bwd`, with `model` and `params`). Compile time is reported apart
from the step time (warm-up excluded, median of repeats). The data-preparation measurements run
here. The output is a JSON list with one object per measurement
(`name`, `samples_per_s`, `batch`, `frames`, `devices`, ...). Reference measurements are named
`reference_<name>`, the straightforward per-sample baselines `<name>_naive`; our objects carry the
ratios (`speedup_vs_reference`, `speedup_vs_naive`, `rss_fraction_of_reference`,
`fraction_of_matmul`). An environment summary goes to OUT.env.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from benchmarks import data_bench  # noqa: E402  (needs the repo on sys.path when run as a script)
from benchmarks.model_bench import MODELS, MODES  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TORCH_PYTHON = '/work/torchvenv/bin/python'
# The reference's peak RSS grows by about this much per (sample x frame) of its min step, over a
# ~350 MiB base (measured at batch 8, T=64: 4.6 GiB). Used to shrink its T=300 batch when RAM is short.
REFERENCE_MIB_PER_SAMPLE_FRAME, REFERENCE_BASE_MIB = 8.4, 350.0


def log(message: str) -> None:
  print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def mem_available_mib() -> float:
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemAvailable:'):
        return int(line.split()[1]) / 1024.0
  return float('inf')


def run_json(command: list[str], timeout_s: float, name: str, env=None) -> dict:
  """Runs a measurement process; its last stdout line is the JSON result."""
  start = time.perf_counter()
  try:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          check=False, cwd=REPO, env=env)
  except subprocess.TimeoutExpired:
    return {'name': name, 'error': f'timed out after {timeout_s:.0f}s', 'samples_per_s': None}
  if done.returncode != 0 or not done.stdout.strip():
    tail = ' | '.join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return {'name': name, 'error': f'exit {done.returncode}: {tail}', 'samples_per_s': None}
  result = json.loads(done.stdout.strip().splitlines()[-1])
  result['wall_s'] = time.perf_counter() - start
  return result


def ours(measure: str | None, timeout_s: float, xla_flags: str | None = None,
         script: str = 'jax_steps.py', **options) -> dict:
  """Runs one of our measurements in a fresh process: `script --measure=... --option=value`."""
  command = [sys.executable, os.path.join(HERE, script)]
  command += [f'--measure={measure}'] if measure else []
  command += [f'--{k}={v}' for k, v in options.items()]
  env = None
  if xla_flags is not None:
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip())
  result = run_json(command, timeout_s, measure or script, env=env)
  if xla_flags is not None:
    result['xla_flags'] = xla_flags
  log(f'ours {measure or script} {options} {xla_flags or ""}: {_brief(result)}')
  return result


def reference(args, measure: str, timeout_s: float, **options) -> dict:
  command = [args.torch_python, os.path.join(HERE, 'reference_torch.py'),
             f'--reference_dir={args.reference_dir}', f'--measure={measure}',
             f'--threads={args.threads}']
  command += [f'--{k}={v}' for k, v in options.items()]
  env = dict(os.environ)
  if args.reference_omp_wait_policy:
    env['OMP_WAIT_POLICY'] = args.reference_omp_wait_policy
  result = run_json(command, timeout_s, measure, env=env)
  result['name'] = f'reference_{measure}'
  result['omp_wait_policy'] = args.reference_omp_wait_policy or 'default'
  log(f'reference {measure} {options}: {_brief(result)}')
  return result


def _brief(result: dict) -> str:
  if result.get('error'):
    return 'ERROR ' + result['error']
  parts = [f"{result['samples_per_s']:.3g} samples/s"]
  for key in ('gflop_per_s', 'compile_s', 'peak_rss_mib'):
    if result.get(key) is not None:
      parts.append(f'{key}={result[key]:.4g}')
  return ', '.join(parts)


def ratio(a, b):
  return a / b if a and b else None


def reference_batch_for(frames: int, batch: int) -> int:
  """The largest batch <= `batch` whose reference min step should fit in free memory."""
  available = mem_available_mib() - 2048  # keep a margin for everyone else on the machine
  need = lambda b: REFERENCE_BASE_MIB + REFERENCE_MIB_PER_SAMPLE_FRAME * b * frames
  while batch > 1 and need(batch) > available:
    batch //= 2
  return batch


def step_benchmarks(args, plan) -> list[dict]:
  """Training steps, ours and (optionally) the reference's, one measurement per process."""
  results = []
  for measure, batch, frames in plan['steps']:
    long = frames > 64
    options = dict(batch=batch, frames=frames, warmup=1,
                   repeats=plan['long_repeats'] if long else plan['repeats'])
    mine = ours(measure, args.timeout_s, **options)
    results.append(mine)
    if not args.reference_dir:
      continue
    ref_options = dict(options)
    if measure == 'min_step':
      ref_options['batch'] = reference_batch_for(frames, batch)
      if not long:
        ref_options['count_flops'] = 1
    if long:
      ref_options['repeats'] = plan['reference_long_repeats']
    ref = reference(args, measure, args.timeout_s * 3, **ref_options)
    if ref_options['batch'] != batch:
      ref['batch_reduced_for_memory'] = True
    results.append(ref)
    mine['speedup_vs_reference'] = ratio(mine.get('samples_per_s'), ref.get('samples_per_s'))
    if measure == 'min_step':
      mine['rss_fraction_of_reference'] = ratio(mine.get('peak_rss_mib'), ref.get('peak_rss_mib'))
      mine['reference_gflop_per_step'] = ref.get('gflop_per_step')
  for measure in plan['ensemble']:
    results.append(ours(measure, args.timeout_s, batch=plan['ensemble_batch'],
                        frames=plan['ensemble_frames'], warmup=1, repeats=plan['repeats']))
  for name, flags in plan.get('variants', []):
    variant = ours('min_step', args.timeout_s, xla_flags=flags, batch=8, frames=64, warmup=1,
                   repeats=plan['repeats'])
    variant['name'] = name
    results.append(variant)
  by_name = {r['name']: r for r in results if r['name'].startswith('ensemble')}
  loop = by_name.get('ensemble_min_step_loop')
  for form in ('vmap', 'map'):
    if loop and f'ensemble_min_step_{form}' in by_name:
      by_name[f'ensemble_min_step_{form}']['speedup_vs_loop'] = ratio(
          by_name[f'ensemble_min_step_{form}'].get('samples_per_s'), loop.get('samples_per_s'))
  return results


def model_benchmarks(args, plan) -> list[dict]:
  """Each classifier's eval forward and train forward+backward, one process per measurement."""
  results = []
  batch, frames = plan['model_batch'], plan['model_frames']
  models = args.models if args.models is not None else plan['models']
  for model in models:
    for mode in ('forward', 'fwd_bwd'):
      result = ours(None, args.timeout_s, script='model_bench.py', model=model, mode=mode,
                    batch=batch, frames=frames, warmup=1, repeats=plan['model_repeats'][mode])
      # A failed process reports no name of its own: say which model and mode it was.
      result.setdefault('model', model)
      if result.get('error'):
        result.update(name=MODES[mode], batch=batch, frames=frames)
      results.append(result)
  return results


def data_benchmarks(args, plan, work_dir: str) -> list[dict]:
  """Parsing and pre_normalization: ours, the naive per-sample baseline, the reference."""
  log(f"data: writing {plan['num_files']} .skeleton files")
  inputs = data_bench.prepare_inputs(work_dir, plan['num_files'], seed=0)
  results = []
  parse_ours, parse_naive = data_bench.bench_parse(inputs, repeats=plan['repeats'])
  parse_naive['name'] = 'ntu_parse_naive'
  prenorm_ours, prenorm_naive = data_bench.bench_pre_normalization(inputs, repeats=5)
  prenorm_naive['name'] = 'pre_normalization_naive'
  results += [parse_ours, parse_naive, prenorm_ours, prenorm_naive]
  parse_ours['speedup_vs_naive'] = ratio(parse_ours['frames_per_s'], parse_naive['frames_per_s'])
  prenorm_ours['speedup_vs_naive'] = ratio(prenorm_ours['samples_per_s'],
                                            prenorm_naive['samples_per_s'])
  for workers in plan['workers']:
    results.append(data_bench.bench_read_ntu(inputs, workers))
  if args.reference_dir:
    ref_parse = reference(args, 'ntu_parse', args.timeout_s, data_dir=inputs.skeleton_dir)
    out_npy = os.path.join(work_dir, 'reference_normalised.npy')
    ref_norm = reference(args, 'pre_normalization', args.timeout_s, data_npy=inputs.npy_path,
                         out_npy=out_npy)
    results += [ref_parse, ref_norm]
    parse_ours['speedup_vs_reference'] = ratio(parse_ours['frames_per_s'],
                                                ref_parse.get('frames_per_s'))
    prenorm_ours['speedup_vs_reference'] = ratio(prenorm_ours['samples_per_s'],
                                                  ref_norm.get('samples_per_s'))
    if os.path.exists(out_npy):
      prenorm_ours['max_abs_diff_vs_reference'] = data_bench.compare_with_reference_output(
          inputs, out_npy)
  for r in results:
    log(f"{r['name']} ({r.get('implementation')}, workers={r.get('workers', 1)}): "
        f"{_brief(r)}")
  return results


def add_matmul_fractions(results: list[dict]) -> None:
  """fraction_of_matmul = achieved GFLOP/s / the same implementation's dense matmul GFLOP/s."""
  matmul = {r.get('implementation'): r.get('gflop_per_s') for r in results
            if r['name'] in ('matmul_f32', 'reference_matmul_f32')}
  for r in results:
    if r['name'] in ('matmul_f32', 'reference_matmul_f32') or not r.get('gflop_per_s'):
      continue
    r['fraction_of_matmul'] = ratio(r['gflop_per_s'], matmul.get(r.get('implementation')))


# XLA CPU settings tried on the min step (batch 8, T=64) with --variants: the default lowers dots
# to YNNPACK fusions; this variant leaves them to XLA's own (Eigen) dot emitter.
VARIANTS = [('min_step_xla_no_ynnpack', '--xla_cpu_experimental_ynn_fusion_type=')]


def make_plan(quick: bool, variants: bool = False) -> dict:
  """What to measure. Full: about 20 minutes on a quiet 2-core machine with the reference, plus
  about 10 for the classifiers at the paper's size (batch 8, T=300; `--skip models` omits them).
  """
  if quick:
    return {'steps': [('min_step', 2, 32)], 'ensemble': [], 'repeats': 2, 'long_repeats': 1,
            'reference_long_repeats': 1, 'num_files': 16, 'workers': [1], 'model_batch': 2,
            'model_frames': 32, 'model_repeats': {'forward': 2, 'fwd_bwd': 2},
            'models': ['msg3d']}
  steps = [(m, 8, t) for t in (64, 300) for m in ('min_step', 'max_step', 'classifier_step')]
  # At T=300 one MS-G3D forward+backward takes tens of seconds here: one timed repeat after the
  # warm-up (which is a full step too) keeps the six models to about 10 minutes.
  ensemble = ['ensemble_min_step_vmap', 'ensemble_min_step_map', 'ensemble_min_step_loop']
  return {'steps': steps, 'ensemble': ensemble,
          'ensemble_batch': 8, 'ensemble_frames': 32, 'repeats': 2, 'long_repeats': 1,
          'reference_long_repeats': 1, 'num_files': 64, 'workers': [1, 2],
          'variants': VARIANTS if variants else [], 'model_batch': 8, 'model_frames': 300,
          'model_repeats': {'forward': 3, 'fwd_bwd': 1}, 'models': list(MODELS)}


def environment(args) -> dict:
  import jax  # pylint: disable=import-outside-toplevel
  model = ''
  try:
    with open('/proc/cpuinfo') as f:
      model = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')),
                   '')
  except OSError:
    pass
  env = {'date_utc': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'cpu': model,
         'cores': os.cpu_count(), 'python': platform.python_version(), 'jax': jax.__version__,
         'backend': jax.default_backend(), 'devices': jax.local_device_count(),
         'xla_flags': os.environ.get('XLA_FLAGS', ''), 'quick': args.quick,
         'mem_available_mib_at_start': mem_available_mib()}
  if args.reference_dir:
    probe = subprocess.run([args.torch_python, '-c', 'import torch; print(torch.__version__)'],
                           capture_output=True, text=True, check=False)
    env['torch'] = probe.stdout.strip() or probe.stderr.strip()[-200:]
    env['reference_dir'] = os.path.abspath(args.reference_dir)
    env['reference_omp_wait_policy'] = args.reference_omp_wait_policy or 'default'
    env['reference_threads'] = args.threads
  return env


def write_json_atomic(path: str, payload) -> None:
  tmp = f'{path}.tmp'
  with open(tmp, 'w') as f:
    json.dump(payload, f, indent=1)
  os.replace(tmp, path)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--json', required=True, help='where to write the list of measurements')
  parser.add_argument('--quick', action='store_true', help='a smoke run of a few minutes')
  parser.add_argument('--reference_dir', default=None,
                      help='checkout of desertfex/skeleton-anonymization to time side by side')
  parser.add_argument('--torch_python', default=DEFAULT_TORCH_PYTHON,
                      help='interpreter of the separate torch environment')
  parser.add_argument('--threads', type=int, default=os.cpu_count(),
                      help='torch threads for the reference (ours: XLA uses every core)')
  parser.add_argument('--reference_omp_wait_policy', default='PASSIVE',
                      help="OMP_WAIT_POLICY for torch; PASSIVE is the reference's best setting "
                           "on a shared machine (spinning OpenMP threads there cost it 2-5x); "
                           "'' keeps the default")
  parser.add_argument('--timeout_s', type=float, default=600, help='per measurement process')
  parser.add_argument('--work_dir', default=None, help='scratch folder (default: a temp dir)')
  parser.add_argument('--variants', action='store_true',
                      help='also time the min step under the alternative XLA settings tried')
  parser.add_argument('--skip', nargs='*', default=[], choices=['steps', 'data', 'models'],
                      help='leave out a group of measurements')
  parser.add_argument('--models', nargs='*', default=None,
                      help='classifiers whose forward and forward+backward are timed '
                           '(default: all six; with --quick only msg3d)')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.reference_dir and not os.path.isfile(args.torch_python):
    raise SystemExit(f'{args.torch_python}: torch interpreter not found (--torch_python)')
  plan = make_plan(args.quick, args.variants)
  env = environment(args)
  log(f'environment: {env}')
  start = time.perf_counter()
  results = [ours('matmul_f32', args.timeout_s, repeats=7, warmup=2)]
  if args.reference_dir:
    results.append(reference(args, 'matmul_f32', args.timeout_s, repeats=7, warmup=2))
  with tempfile.TemporaryDirectory(dir=args.work_dir) as work_dir:
    if 'data' not in args.skip:
      results += data_benchmarks(args, plan, work_dir)
    if 'steps' not in args.skip:
      results += step_benchmarks(args, plan)
  if 'models' not in args.skip:
    results += model_benchmarks(args, plan)
  add_matmul_fractions(results)
  env['total_wall_s'] = time.perf_counter() - start
  write_json_atomic(args.json, results)
  write_json_atomic(os.path.splitext(args.json)[0] + '.env.json', env)
  log(f"done in {env['total_wall_s']:.0f}s: {args.json}")


if __name__ == '__main__':
  main()
