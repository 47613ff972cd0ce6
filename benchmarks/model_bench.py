"""Forward and forward+backward time of each registered classifier, one measurement per process.

Two jitted subjects per model, on one device, float32, input [N, M, T, V, C] channels-last (ntu25):
  forward  eval mode (`train=False`: BatchNorm running statistics, no dropout) -> logits.
  fwd_bwd  train mode: value and gradient of the mean cross-entropy with respect to the
           parameters, BatchNorm batch statistics mutable (their update is returned, so XLA keeps
           it), a dropout key. No optimiser update: this is the network's own training cost; the
           full training step (SGD included) is jax_steps.py's `classifier_step`.

Timing, weights and peak memory reuse jax_steps.py (`time_step`: compile timed apart, warm-up
excluded, median of repeats; `bank_variables`: random weights with the init's shapes; VmHWM).
The paper's sizes are batch 8, T=300; every model gets 60 classes and 2 persons (the paper's
gender classifier, msg3d_nog3d, is 2 classes and 1 person there: pass --num_classes/--num_persons).

  python benchmarks/model_bench.py --model=msg3d --mode=fwd_bwd --batch=8 --frames=300 --repeats=1
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import jax  # noqa: E402  (after the sys.path set-up, so the script runs from any folder)
import jax.numpy as jnp  # noqa: E402

from benchmarks import jax_steps  # noqa: E402
from skeleton_anon.data.layouts import get_layout  # noqa: E402
from skeleton_anon.models import build_classifier, count_params  # noqa: E402
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


def measure(model_name: str, mode: str, batch: int, frames: int, warmup: int = 1,
            repeats: int = 3, num_classes: int = 60, num_persons: int = 2,
            knobs: dict | None = None) -> dict:
  """One JSON-ready result (without the process's peak RSS, which run_one adds)."""
  fn, args, advance, params = subject(model_name, mode, batch, frames, num_classes, num_persons,
                                      knobs)
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
  if timing['flops']:
    result['gflop_per_step'] = timing['flops'] / 1e9
    result['gflop_per_s'] = timing['flops'] / 1e9 / timing['step_s']
  return result


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', required=True, help=f'a registered classifier, e.g. {MODELS}')
  parser.add_argument('--mode', required=True, choices=sorted(MODES))
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--frames', type=int, default=300)
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--num_classes', type=int, default=60)
  parser.add_argument('--num_persons', type=int, default=2)
  parser.add_argument('--knobs', type=json.loads, default=None,
                      help='builder knobs as JSON, e.g. \'{"num_stages": 1}\' (tiny test models)')
  return parser.parse_args(argv)


def run_one(args) -> dict:
  result = measure(args.model, args.mode, args.batch, args.frames, args.warmup, args.repeats,
                   args.num_classes, args.num_persons, args.knobs)
  result['peak_rss_mib'] = jax_steps.peak_rss_mib()
  return result


if __name__ == '__main__':
  print(json.dumps(run_one(parse_args())))
