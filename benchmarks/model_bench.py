"""Forward and forward+backward time of each registered classifier, one measurement per process.

Two jitted subjects per model, on one device, float32, input [N, M, T, V, C] channels-last (ntu25):
  forward  eval mode (`train=False`: BatchNorm running statistics, no dropout) -> logits.
  fwd_bwd  train mode: value and gradient of the mean cross-entropy with respect to the
           parameters, BatchNorm batch statistics mutable (their update is returned, so XLA keeps
           it), a dropout key. No optimiser update: this is the network's own training cost; the
           full training step (SGD included) is jax_steps.py's `classifier_step`.

FLOPs are XLA's cost analysis of the compiled subject. In fwd_bwd the wide temporal convolutions'
weight gradients run as a loop over the kernel's taps (models/layers.py `temporal_conv`), whose
body XLA's cost analysis counts once: their FLOPs are counted on the same subject compiled with
XLA's convolution weight gradient instead (the same arithmetic; compiled, never run).

Timing, weights and peak memory reuse jax_steps.py (`time_step`: compile timed apart, warm-up
excluded, median of repeats; `bank_variables`: random weights with the init's shapes; VmHWM).
The paper's sizes are batch 8, T=300; every model gets 60 classes and 2 persons (the paper's
gender classifier, msg3d_nog3d, is 2 classes and 1 person there: pass --num_classes/--num_persons).

  python benchmarks/model_bench.py --model=msg3d --mode=fwd_bwd --batch=8 --frames=300 --repeats=1

`--weight_grad=conv` times the temporal convolutions as they were before (nn.Conv's convolution
and XLA's gradients of it) instead of the default ('auto': shifted-matmul weight gradients on
CPU, models/layers.py `temporal_conv`). `--compare_weight_grad` compiles both forms of every
model of `--model` (comma-separated) in one process and alternates all their timed calls
(`--repeats` rounds), so that one run on a shared machine gives fair ratios between forms and
between models; it reports each one's median, XLA's temporary-buffer size and the load average
per round (the process's peak RSS then covers all of them):

  python benchmarks/model_bench.py --model=agcn,stgcn,msg3d --mode=fwd_bwd --compare_weight_grad
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import jax  # noqa: E402  (after the sys.path set-up, so the script runs from any folder)
import jax.numpy as jnp  # noqa: E402

from benchmarks import jax_steps  # noqa: E402
from skeleton_anon.data.layouts import get_layout  # noqa: E402
from skeleton_anon.models import build_classifier, count_params, layers  # noqa: E402
from skeleton_anon.train import losses  # noqa: E402

MODELS = ('msg3d', 'msg3d_nog3d', 'shiftgcn', 'agcn', 'stgcn', 'ctrgcn')
MODES = {'forward': 'model_forward', 'fwd_bwd': 'model_fwd_bwd'}


def forward(model, variables: dict, x: jax.Array) -> jax.Array:
  """Eval-mode logits [N, K]."""
  return model.apply(variables, x, train=False)


def forward_backward(model, variables: dict, x: jax.Array, labels: jax.Array, rng: jax.Array):
  """(loss, parameter gradients, new batch statistics) of one train-mode pass."""
  params, others = variables['params'], {k: v for k, v in variables.items() if k != 'params'}

  def loss_fn(p):
    logits, updates = model.apply({**others, 'params': p}, x, train=True,
                                  rngs={'dropout': rng}, mutable=['batch_stats'])
    return losses.cross_entropy(logits, labels, jnp.ones(labels.shape, jnp.float32)), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, grads, updates


def subject(model_name: str, mode: str, batch: int, frames: int, num_classes: int = 60,
            num_persons: int = 2, knobs: dict | None = None):
  """(jitted fn, its arguments, advance, parameter count) in the form jax_steps.time_step takes."""
  model = build_classifier(model_name, num_classes=num_classes, layout=get_layout('ntu25'),
                           num_persons=num_persons, **(knobs or {}))
  data = jax_steps.make_batch(batch, frames)
  x = data['x'][:, :num_persons]
  labels = data['label'] % num_classes
  # One member of a bank of one: random weights with the init's shapes, no eager init.
  variables = jax.tree.map(lambda a: a[0], jax_steps.bank_variables(model, [0], x))
  if mode == 'forward':
    fn, args = jax.jit(functools.partial(forward, model)), (variables, x)
  elif mode == 'fwd_bwd':
    fn = jax.jit(functools.partial(forward_backward, model))
    args = (variables, x, labels, jax.random.key(1))
  else:
    raise ValueError(f'unknown mode {mode!r}; known: {sorted(MODES)}')
  # Nothing is donated or updated between calls: every repeat sees the same arguments.
  return fn, args, lambda out, a: a, count_params(variables['params'])


def counted_flops(model_name: str, mode: str, batch: int, frames: int, num_classes: int = 60,
                  num_persons: int = 2, knobs: dict | None = None) -> float | None:
  """XLA's FLOP count of the subject with the temporal convolutions in their 'conv' form (no
  tap loop, so every FLOP is counted; the same arithmetic as 'auto')."""
  fn, args, _, _ = subject(model_name, mode, batch, frames, num_classes, num_persons, knobs)
  with layers.weight_grad_while_tracing('conv'):
    return jax_steps.cost_flops(fn.lower(*args).compile())


def measure(model_name: str, mode: str, batch: int, frames: int, warmup: int = 1,
            repeats: int = 3, num_classes: int = 60, num_persons: int = 2,
            knobs: dict | None = None, weight_grad: str = 'auto') -> dict:
  """One JSON-ready result (without the process's peak RSS, which run_one adds)."""
  fn, args, advance, params = subject(model_name, mode, batch, frames, num_classes, num_persons,
                                      knobs)
  with layers.weight_grad_while_tracing(weight_grad):   # time_step traces and compiles first
    timing = jax_steps.time_step(fn, args, advance, warmup, repeats)
  result = {'name': MODES[mode], 'model': model_name, 'implementation': 'jax', 'batch': batch,
            'frames': frames, 'num_classes': num_classes, 'num_persons': num_persons,
            'params': params, 'devices': jax.local_device_count(),
            'backend': jax.default_backend(), 'jax': jax.__version__,
            'samples_per_s': batch / timing['step_s'], 'step_s': timing['step_s'],
            'step_s_all': timing['step_s_all'], 'compile_s': timing['compile_s'],
            'gflop_per_step': None, 'gflop_per_s': None}
  if knobs:
    result['knobs'] = knobs
  if weight_grad != 'auto':
    result['weight_grad'] = weight_grad
  if mode == 'fwd_bwd':
    timing['flops'] = counted_flops(model_name, mode, batch, frames, num_classes, num_persons,
                                    knobs)
  if timing['flops']:
    result['gflop_per_step'] = timing['flops'] / 1e9
    result['gflop_per_s'] = timing['flops'] / 1e9 / timing['step_s']
  return result


def compare_weight_grads(model_names, mode: str, batch: int, frames: int, warmup: int = 1,
                         repeats: int = 3, num_classes: int = 60, num_persons: int = 2,
                         knobs: dict | None = None, forms=('conv', 'auto')) -> dict:
  """Every (model, form) compiled in one process, their timed calls alternated round by round,
  so that ratios between forms and between models come from the same minutes of machine time."""
  compiled, compile_s, params, flops = {}, {}, {}, {}
  for model_name in model_names:
    flops[model_name] = counted_flops(model_name, mode, batch, frames, num_classes, num_persons,
                                      knobs)
    for form in forms:
      # A fresh jitted function per form: jit caches its trace, and the form is chosen in tracing.
      fn, args, _, params[model_name] = subject(model_name, mode, batch, frames, num_classes,
                                                num_persons, knobs)
      start = time.perf_counter()
      with layers.weight_grad_while_tracing(form):
        compiled[model_name, form] = (fn.lower(*args).compile(), args)
      compile_s[model_name, form] = time.perf_counter() - start
      for _ in range(warmup):
        jax.block_until_ready(compiled[model_name, form][0](*args))
  times = {key: [] for key in compiled}
  load = [os.getloadavg()]
  for _ in range(repeats):
    for key, (run, args) in compiled.items():
      start = time.perf_counter()
      jax.block_until_ready(run(*args))
      times[key].append(time.perf_counter() - start)
    load.append(os.getloadavg())
  result = {'name': f'{MODES[mode]}_weight_grads', 'implementation': 'jax', 'batch': batch,
            'frames': frames, 'num_classes': num_classes, 'num_persons': num_persons,
            'backend': jax.default_backend(), 'jax': jax.__version__, 'forms': list(forms),
            'load_average_per_round': load, 'models': {}}
  for model_name in model_names:
    entry = {'params': params[model_name],
             'gflop_per_step': flops[model_name] / 1e9 if flops[model_name] else None}
    for form in forms:
      step_s = statistics.median(times[model_name, form])
      memory = compiled[model_name, form][0].memory_analysis()
      entry[form] = {'step_s': step_s, 'step_s_all': times[model_name, form],
                     'compile_s': compile_s[model_name, form], 'samples_per_s': batch / step_s,
                     'gflop_per_s': entry['gflop_per_step'] / step_s if flops[model_name] else None,
                     'temp_mib': memory.temp_size_in_bytes / 2**20 if memory else None}
    first, last = entry[forms[0]]['step_s'], entry[forms[-1]]['step_s']
    entry[f'speedup_{forms[-1]}_vs_{forms[0]}'] = first / last
    result['models'][model_name] = entry
  return result


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', required=True,
                      help=f'a registered classifier, e.g. {MODELS} (several, comma-separated, '
                           'with --compare_weight_grad)')
  parser.add_argument('--mode', required=True, choices=sorted(MODES))
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--frames', type=int, default=300)
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--num_classes', type=int, default=60)
  parser.add_argument('--num_persons', type=int, default=2)
  parser.add_argument('--weight_grad', default='auto', choices=layers.WEIGHT_GRADS,
                      help="temporal convolutions' gradient form ('conv': as before)")
  parser.add_argument('--compare_weight_grad', action='store_true',
                      help="time 'conv' and 'auto' alternately in this one process")
  parser.add_argument('--knobs', type=json.loads, default=None,
                      help='builder knobs as JSON, e.g. \'{"num_stages": 1}\' (tiny test models)')
  return parser.parse_args(argv)


def run_one(args) -> dict:
  if args.compare_weight_grad:
    result = compare_weight_grads(args.model.split(','), args.mode, args.batch, args.frames,
                                  args.warmup, args.repeats, args.num_classes, args.num_persons,
                                  args.knobs)
  else:
    result = measure(args.model, args.mode, args.batch, args.frames, args.warmup, args.repeats,
                     args.num_classes, args.num_persons, args.knobs, args.weight_grad)
  result['peak_rss_mib'] = jax_steps.peak_rss_mib()
  return result


if __name__ == '__main__':
  print(json.dumps(run_one(parse_args())))
