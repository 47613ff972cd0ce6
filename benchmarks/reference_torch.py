"""Times the public PyTorch reference (desertfex/skeleton-anonymization) on the CPU.

Run with the separate torch environment, never with the package's venv:

  /work/torchvenv/bin/python benchmarks/reference_torch.py --reference_dir=/work/ref_b \
      --measure=min_step --batch=8 --frames=64 --threads=2

The reference checkout is imported at benchmark time from `--reference_dir`; none of its code lives in
this repository. Each invocation runs ONE measurement and prints one JSON object on its last stdout
line, so that a driver can run every measurement in its own process and read an honest peak RSS
(VmHWM of this process). `--measure=all` is such a driver: it runs the Phase-1 set in subprocesses.

What each step does mirrors the reference's training code (train_anonymizer.py, pretrain_classifier.py):
- min_step: residual anonymizer -> MS-G3D action classifier (eval mode) and MS-G3D privacy classifier
  (left in train mode, as the reference does); loss MSE - alpha*H + beta*CE; backward through all three
  networks (every parameter requires grad, so the frozen classifiers' weight gradients are computed
  too); SGD-nesterov step on the anonymizer only.
- max_step: anonymizer forward (with autograd) -> privacy classifier; CE; backward; step on the privacy
  classifier.
- classifier_step: one MS-G3D action classifier training step (CE, SGD nesterov, weight decay 5e-4).
- ntu_parse: `data_gen/ntu_gendata.read_xyz` on every `.skeleton` file of `--data_dir`.
- pre_normalization: `data_gen/preprocess.pre_normalization` on `--data_npy` ([N, 3, T, 25, 2]).
- matmul_f32: dense float32 `torch.mm`, the machine's practical matmul rate seen by torch.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

NUM_JOINTS, NUM_PERSONS = 25, 2
ACTION_CLASSES, PRIVACY_CLASSES = 60, 40  # NTU60 action, 40-performer re-identification.
GRAPH = 'graph.ntu_rgb_d.AdjMatrixGraph'
# config/ntu_adv_res.yaml of the reference.
ALPHA, BETA = 0.1, 0.0067
ANONYMIZER_LR, PRIVACY_LR, WEIGHT_DECAY = 0.0018, 0.003, 1e-5


def peak_rss_mib() -> float:
  """This process's peak resident set size (VmHWM) in MiB."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmHWM:'):
        return int(line.split()[1]) / 1024.0
  raise RuntimeError('VmHWM missing from /proc/self/status')


def import_reference(reference_dir: str):
  """Puts the reference checkout on sys.path (its modules import each other by top-level name)."""
  if not os.path.isfile(os.path.join(reference_dir, 'model', 'msg3d.py')):
    raise SystemExit(f'{reference_dir}: not a desertfex/skeleton-anonymization checkout '
                     '(model/msg3d.py missing)')
  reference_dir = os.path.abspath(reference_dir)
  for path in (reference_dir, os.path.join(reference_dir, 'data_gen')):
    if path not in sys.path:
      sys.path.insert(0, path)


def msg3d(num_classes: int):
  from model.msg3d import Model  # pylint: disable=import-outside-toplevel
  return Model(num_class=num_classes, num_point=NUM_JOINTS, num_person=NUM_PERSONS,
               num_gcn_scales=13, num_g3d_scales=6, graph=GRAPH)


def residual_anonymizer():
  from model.anonymization_res import Anonymizer  # pylint: disable=import-outside-toplevel
  return Anonymizer(num_point=NUM_JOINTS, num_person=NUM_PERSONS)


def entropy(logits):
  """Mean softmax entropy, as the reference's train_anonymizer.entropy computes it."""
  probs = torch.softmax(logits, 1)
  return torch.mean(-torch.sum(probs * torch.log_softmax(logits, 1), 1))


def sgd(params, lr, weight_decay):
  return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def make_batch(batch: int, frames: int, seed: int = 0):
  gen = torch.Generator().manual_seed(seed)
  data = torch.randn(batch, 3, frames, NUM_JOINTS, NUM_PERSONS, generator=gen) * 0.3
  action = torch.randint(0, ACTION_CLASSES, (batch,), generator=gen)
  privacy = torch.randint(0, PRIVACY_CLASSES, (batch,), generator=gen)
  return data, action, privacy


def build_step(kind: str, batch: int, frames: int):
  """Returns a zero-argument callable doing one training step of the given kind."""
  torch.manual_seed(0)
  data, action_label, privacy_label = make_batch(batch, frames)
  ce = torch.nn.CrossEntropyLoss()
  if kind == 'min_step':
    anonymizer, action_model, privacy_model = (
        residual_anonymizer(), msg3d(ACTION_CLASSES), msg3d(PRIVACY_CLASSES))
    action_model.eval()
    optimizer = sgd(anonymizer.parameters(), ANONYMIZER_LR, WEIGHT_DECAY)

    def step():
      optimizer.zero_grad()
      anonymized = anonymizer(data)
      action_loss = ce(action_model(anonymized), action_label)
      privacy_loss = entropy(privacy_model(anonymized))
      recon_loss = torch.nn.functional.mse_loss(anonymized, data)
      loss = recon_loss - ALPHA * privacy_loss + BETA * action_loss
      loss.backward()
      optimizer.step()
      return loss.item()
  elif kind == 'max_step':
    anonymizer, privacy_model = residual_anonymizer(), msg3d(PRIVACY_CLASSES)
    optimizer = sgd(privacy_model.parameters(), PRIVACY_LR, WEIGHT_DECAY)

    def step():
      optimizer.zero_grad()
      loss = ce(privacy_model(anonymizer(data)), privacy_label)
      loss.backward()
      optimizer.step()
      return loss.item()
  elif kind == 'classifier_step':
    model = msg3d(ACTION_CLASSES)
    model.train()
    optimizer = sgd(model.parameters(), 0.05, 5e-4)

    def step():
      optimizer.zero_grad()
      loss = ce(model(data), action_label)
      loss.backward()
      optimizer.step()
      return loss.item()
  else:
    raise ValueError(kind)
  return step


def count_step_flops(step) -> float:
  """FLOPs of one step as torch's FlopCounterMode counts them (matmuls and convolutions)."""
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=import-outside-toplevel
  counter = FlopCounterMode(display=False)
  with counter:
    step()
  return float(counter.get_total_flops())


def time_calls(fn, warmup: int, repeats: int) -> tuple[list[float], float]:
  """Seconds of each timed call (after `warmup` untimed calls) and the first call's seconds."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  for _ in range(max(0, warmup - 1)):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times, first


def measure_step(args) -> dict:
  step = build_step(args.measure, args.batch, args.frames)
  times, first = time_calls(step, args.warmup, args.repeats)
  median = statistics.median(times)
  result = {'samples_per_s': args.batch / median, 'step_s': median, 'step_s_all': times,
            'first_step_s': first}
  if args.count_flops:
    flops = count_step_flops(step)
    result['gflop_per_step'] = flops / 1e9
    result['gflop_per_s'] = flops / 1e9 / median
  return result


def measure_matmul(args) -> dict:
  n = args.matmul_size
  gen = torch.Generator().manual_seed(0)
  a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
  times, _ = time_calls(lambda: torch.mm(a, b), args.warmup, args.repeats)
  median = statistics.median(times)
  return {'samples_per_s': 1.0 / median, 'step_s': median, 'gflop_per_s': 2 * n**3 / median / 1e9,
          'matmul_size': n, 'batch': 1, 'frames': 0}  # one n x n product per "sample"


def measure_ntu_parse(args) -> dict:
  from ntu_gendata import read_xyz  # pylint: disable=import-outside-toplevel
  files = sorted(os.path.join(args.data_dir, name) for name in os.listdir(args.data_dir)
                 if name.endswith('.skeleton'))
  if not files:
    raise SystemExit(f'{args.data_dir}: no .skeleton files')
  # gendata() calls read_xyz(path, max_body=4, num_joint=25) once per file, in one process.
  start = time.perf_counter()
  frames = sum(read_xyz(path, max_body=4, num_joint=NUM_JOINTS).shape[1] for path in files)
  seconds = time.perf_counter() - start
  return {'samples_per_s': len(files) / seconds, 'frames_per_s': frames / seconds,
          'files': len(files), 'total_frames': frames, 'seconds': seconds, 'workers': 1,
          'batch': 1, 'frames': round(frames / len(files))}


def measure_pre_normalization(args) -> dict:
  from preprocess import pre_normalization  # pylint: disable=import-outside-toplevel
  source = np.load(args.data_npy)
  data = source.copy()
  # The reference prints progress for every pass; keep that out of the JSON line.
  with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    start = time.perf_counter()
    normalised = pre_normalization(data)
    seconds = time.perf_counter() - start
  if args.out_npy:
    np.save(args.out_npy, normalised)
  return {'samples_per_s': source.shape[0] / seconds, 'seconds': seconds,
          'batch': source.shape[0], 'frames': source.shape[2]}


MEASURES = {
    'min_step': measure_step,
    'max_step': measure_step,
    'classifier_step': measure_step,
    'matmul_f32': measure_matmul,
    'ntu_parse': measure_ntu_parse,
    'pre_normalization': measure_pre_normalization,
}


def run_one(args) -> dict:
  torch.set_num_threads(args.threads)
  import_reference(args.reference_dir)
  result = {'name': args.measure, 'implementation': 'reference_torch', 'batch': args.batch,
            'frames': args.frames, 'devices': 1, 'threads': args.threads,
            'torch': torch.__version__}
  result.update(MEASURES[args.measure](args))  # data measures set their own batch/frames
  result['peak_rss_mib'] = peak_rss_mib()
  return result


def run_in_subprocess(reference_dir: str, measure: str, python: str = sys.executable,
                      timeout_s: float | None = None, **options) -> dict:
  """Runs one measurement in a fresh process of `python` and returns its JSON result."""
  command = [python, os.path.abspath(__file__), f'--reference_dir={reference_dir}',
             f'--measure={measure}']
  command += [f'--{key}={value}' for key, value in options.items()]
  done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
  if done.returncode != 0:
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {'name': measure, 'implementation': 'reference_torch', 'error': ' | '.join(tail),
            'returncode': done.returncode}
  return json.loads(done.stdout.strip().splitlines()[-1])


def phase_one(args) -> list[dict]:
  """The reference-side set: steps at T=64 and T=300, matmul, parsing and normalisation."""
  common = {'threads': args.threads}
  plan = [('matmul_f32', {'repeats': 5, 'warmup': 2})]
  for frames in args.frame_list:
    for kind in ('min_step', 'max_step', 'classifier_step'):
      repeats = args.repeats if frames <= 64 else args.long_repeats
      options = {'batch': args.batch, 'frames': frames, 'repeats': repeats, 'warmup': 1}
      if kind == 'min_step' and frames <= 64:
        options['count_flops'] = 1
      plan.append((kind, options))
  if args.data_dir:
    plan.append(('ntu_parse', {'data_dir': args.data_dir}))
  if args.data_npy:
    plan.append(('pre_normalization', {'data_npy': args.data_npy}))
  results = []
  for measure, options in plan:
    result = run_in_subprocess(args.reference_dir, measure, **common, **options)
    print(json.dumps(result), file=sys.stderr, flush=True)
    results.append(result)
  return results


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference_dir', required=True,
                      help='checkout of desertfex/skeleton-anonymization')
  parser.add_argument('--measure', default='all', choices=['all', *MEASURES])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--frames', type=int, default=64)
  parser.add_argument('--frame_list', type=int, nargs='+', default=[64, 300],
                      help='with --measure=all: the clip lengths of the step measurements')
  parser.add_argument('--threads', type=int, default=os.cpu_count())
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--long_repeats', type=int, default=2,
                      help='with --measure=all: repeats of the T>64 steps (each takes a minute)')
  parser.add_argument('--count_flops', type=int, default=0)
  parser.add_argument('--matmul_size', type=int, default=2048)
  parser.add_argument('--data_dir', default=None, help='folder of .skeleton files (ntu_parse)')
  parser.add_argument('--data_npy', default=None,
                      help='[N, 3, T, 25, 2] float32 array (pre_normalization)')
  parser.add_argument('--out_npy', default=None,
                      help='pre_normalization: save the normalised array here (for comparison)')
  parser.add_argument('--json', default=None, help='with --measure=all: write the list here')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.measure != 'all':
    print(json.dumps(run_one(args)))
    return
  results = phase_one(args)
  text = json.dumps(results, indent=1)
  if args.json:
    tmp = args.json + '.tmp'
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, args.json)
  else:
    print(text)


if __name__ == '__main__':
  main()
