"""Our training steps as benchmark subjects: models, inputs and one jitted callable per measurement.

Every measurement runs the package's own steps (skeleton_anon.train.steps) as training would, on
one device: the min step (residual anonymizer -> frozen MS-G3D action classifier + MS-G3D privacy
classifier, Eq. 2), the max step (the adversary's CE update), a classifier training step, and the
3a3p ensemble min step (Eq. 3, three action and three privacy MS-G3D) in two forms: the package's
vmapped banks, and the same six classifiers called one after another in a Python loop inside one
jitted step.

Run one measurement per process (so that the peak RSS belongs to it):

  python benchmarks/jax_steps.py --measure=min_step --batch=8 --frames=64
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.models import build_anonymizer, build_classifier
from skeleton_anon.train import losses, state as state_lib, steps

NUM_PERSONS, ACTION_CLASSES, PRIVACY_CLASSES = 2, 60, 40
# The reference's config/ntu_adv_res.yaml (its loss form is MSE - alpha*H + beta*CE).
ALPHA, BETA = 0.1, 0.0067
ANONYMIZER_LR, PRIVACY_LR, WEIGHT_DECAY = 0.0018, 0.003, 1e-5


def proc_status_mib(field: str) -> float:
  """A kB field of /proc/self/status (e.g. VmHWM, RssAnon) in MiB."""
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1]) / 1024.0
  raise RuntimeError(f'{field} missing from /proc/self/status')


def peak_rss_mib() -> float:
  """This process's peak resident set size (VmHWM) in MiB."""
  return proc_status_mib('VmHWM')


def make_batch(batch: int, frames: int, seed: int = 0) -> dict:
  """A full batch of random skeletons and labels in the steps' batch format."""
  layout = get_layout('ntu25')
  rng = np.random.default_rng(seed)
  x = rng.normal(0, 0.3, (batch, NUM_PERSONS, frames, layout.num_joints, 3)).astype(np.float32)
  return {
      'x': jnp.asarray(x),
      'lengths': jnp.full((batch,), frames, jnp.int32),
      'weight': jnp.ones((batch,), jnp.float32),
      'action': jnp.asarray(rng.integers(0, ACTION_CLASSES, batch), jnp.int32),
      'privacy': jnp.asarray(rng.integers(0, PRIVACY_CLASSES, batch), jnp.int32),
      'label': jnp.asarray(rng.integers(0, ACTION_CLASSES, batch), jnp.int32),
  }


def classifier(num_classes: int):
  return build_classifier('msg3d', num_classes=num_classes, layout=get_layout('ntu25'),
                          num_persons=NUM_PERSONS)


def anonymizer():
  # 'reference' = ten blocks with the relu before the add, as the reference's anonymization_res.
  return build_anonymizer('residual_mlp', num_persons=NUM_PERSONS, num_joints=25,
                          variant='reference')


def bank_variables(model, seeds, x) -> dict:
  """Stacked random variables (leading seed axis) with the shapes `model.init` would give.

  Step time does not depend on the weights' values, and a real MS-G3D init runs hundreds of
  eager ops (about 20 s per network on this machine): the shapes come from `jax.eval_shape`, the
  values from numpy (small normal weights, BatchNorm mean 0 / variance 1, finite activations).
  """
  shapes = jax.eval_shape(lambda k: model.init(k, x[:1], train=False), jax.random.key(0))

  def fill(path, leaf, rng):
    name = jax.tree_util.keystr(path)
    if "'var'" in name or "'scale'" in name:
      return np.ones(leaf.shape, leaf.dtype)
    if "'mean'" in name or "'bias'" in name:
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = max(1, int(np.prod(leaf.shape[:-1])))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  members = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    members.append(jax.tree_util.tree_map_with_path(lambda p, l, r=rng: fill(p, l, r), shapes))
  return jax.tree.map(lambda *leaves: jnp.asarray(np.stack(leaves)), *members)


def sgd(lr: float):
  return state_lib.sgd(lr, 1, weight_decay=WEIGHT_DECAY)


def min_step_subject(batch: dict, num_action: int = 1, num_privacy: int = 1,
                     bank_form: str = 'vmap'):
  """(jitted step, its arguments, output -> next arguments) for the package's min step."""
  anon, action_model, privacy_model = anonymizer(), classifier(ACTION_CLASSES), classifier(
      PRIVACY_CLASSES)
  tx = sgd(ANONYMIZER_LR)
  anon_state = state_lib.init_state(anon.init(jax.random.key(0), batch['x'], batch['lengths']), tx)
  action_vars = bank_variables(action_model, range(1, 1 + num_action), batch['x'])
  privacy_vars = bank_variables(privacy_model, range(100, 100 + num_privacy), batch['x'])
  weights = steps.LOSS_FORMS['recon_first'](ALPHA, BETA)
  fn = steps.jit_step(functools.partial(steps.min_step, bank_form=bank_form), anon, action_model,
                      privacy_model, tx, weights)
  args = (anon_state, action_vars, privacy_vars, batch)
  return fn, args, lambda out, a: (out[0],) + a[1:]


def loop_min_step(anon_model, model, tx, weights, anon_state, action_list, privacy_list, batch):
  """Eq. 3 with the classifiers called one by one (a Python loop) instead of as vmapped banks."""
  x, lengths, w = batch['x'], batch['lengths'], batch['weight']
  w_ce, w_ent, w_rec = weights

  def loss_fn(params):
    x_anon = anon_model.apply({'params': params}, x, lengths)
    ce = sum(losses.cross_entropy(model[0].apply(jax.lax.stop_gradient(v), x_anon, train=False),
                                  batch['action'], w) for v in action_list)
    ent = sum(losses.entropy(model[1].apply(jax.lax.stop_gradient(v), x_anon, train=False), w)
              for v in privacy_list)
    return w_ce * ce - w_ent * ent + w_rec * losses.reconstruction_mse(x_anon, x, lengths, w)

  grads = jax.grad(loss_fn)(anon_state.params)
  deltas, opt_state = tx.update(grads, anon_state.opt_state, anon_state.params)
  return anon_state.replace(params=optax.apply_updates(anon_state.params, deltas),
                            opt_state=opt_state, step=anon_state.step + 1)


def loop_min_step_subject(batch: dict, num_action: int = 3, num_privacy: int = 3):
  """The same six classifiers and anonymizer as the vmapped ensemble, looped over in Python."""
  fn, (anon_state, action_vars, privacy_vars, _), _ = min_step_subject(
      batch, num_action, num_privacy)
  del fn
  unstack = lambda bank, n: [jax.tree.map(lambda a, i=i: a[i], bank) for i in range(n)]
  models = (classifier(ACTION_CLASSES), classifier(PRIVACY_CLASSES))
  weights = steps.LOSS_FORMS['recon_first'](ALPHA, BETA)
  fn = jax.jit(functools.partial(loop_min_step, anonymizer(), models, sgd(ANONYMIZER_LR),
                                 weights), donate_argnums=(0,))
  args = (anon_state, unstack(action_vars, num_action), unstack(privacy_vars, num_privacy), batch)
  return fn, args, lambda out, a: (out,) + a[1:]


def max_step_subject(batch: dict):
  anon, privacy_model = anonymizer(), classifier(PRIVACY_CLASSES)
  tx = sgd(PRIVACY_LR)
  anon_vars = anon.init(jax.random.key(0), batch['x'], batch['lengths'])
  privacy_state = state_lib.init_bank_state(bank_variables(privacy_model, [100], batch['x']), tx)
  fn = steps.jit_step(steps.max_step, anon, privacy_model, tx)
  args = (privacy_state, anon_vars, batch, jax.random.key(1))
  return fn, args, lambda out, a: (out[0],) + a[1:]


def classifier_step_subject(batch: dict):
  model = classifier(ACTION_CLASSES)
  tx = state_lib.sgd(0.05, 1, weight_decay=5e-4)
  bank_state = state_lib.init_bank_state(bank_variables(model, [1], batch['x']), tx)
  fn = steps.jit_step(steps.bank_train_step, model, tx)
  args = (bank_state, batch, jax.random.key(1))
  return fn, args, lambda out, a: (out[0],) + a[1:]


SUBJECTS = {
    'min_step': min_step_subject,
    'max_step': max_step_subject,
    'classifier_step': classifier_step_subject,
    'ensemble_min_step_vmap': functools.partial(min_step_subject, num_action=3, num_privacy=3),
    'ensemble_min_step_loop': loop_min_step_subject,
    'ensemble_min_step_map': functools.partial(min_step_subject, num_action=3, num_privacy=3,
                                               bank_form='map'),
}


def cost_flops(compiled) -> float | None:
  """FLOPs of one call from XLA's cost analysis (a dict, or a list of one dict, by version)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def time_step(fn, args, advance, warmup: int, repeats: int) -> dict:
  """Compiles (timed separately), then times `repeats` steps after `warmup`, feeding state back."""
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - start
  for _ in range(warmup):
    args = advance(jax.block_until_ready(compiled(*args)), args)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - start)
    args = advance(out, args)
  return {'compile_s': compile_s, 'step_s': statistics.median(times), 'step_s_all': times,
          'flops': cost_flops(compiled)}


def measure_step(args) -> dict:
  batch = make_batch(args.batch, args.frames)
  fn, fn_args, advance = SUBJECTS[args.measure](batch)
  timing = time_step(fn, fn_args, advance, args.warmup, args.repeats)
  result = {'samples_per_s': args.batch / timing['step_s'], 'step_s': timing['step_s'],
            'step_s_all': timing['step_s_all'], 'compile_s': timing['compile_s']}
  if timing['flops']:
    result['gflop_per_step'] = timing['flops'] / 1e9
    result['gflop_per_s'] = timing['flops'] / 1e9 / timing['step_s']
  return result


def measure_matmul(args) -> dict:
  """Dense float32 matmul rate of XLA on this machine (the roofline for the steps' FLOP rate)."""
  n = args.matmul_size
  key_a, key_b = jax.random.split(jax.random.key(0))
  a = jax.random.normal(key_a, (n, n), jnp.float32)
  b = jax.random.normal(key_b, (n, n), jnp.float32)
  matmul = jax.jit(lambda p, q: jnp.dot(p, q, precision=jax.lax.Precision.HIGHEST))
  compiled = matmul.lower(a, b).compile()
  for _ in range(args.warmup):
    jax.block_until_ready(compiled(a, b))
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    jax.block_until_ready(compiled(a, b))
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {'samples_per_s': 1.0 / median, 'step_s': median, 'gflop_per_s': 2 * n**3 / median / 1e9,
          'matmul_size': n}


def run_one(args) -> dict:
  result = {'name': args.measure, 'implementation': 'jax', 'batch': args.batch,
            'frames': args.frames, 'devices': jax.local_device_count(),
            'backend': jax.default_backend(), 'threads': os.cpu_count(), 'jax': jax.__version__}
  if args.measure == 'matmul_f32':
    result.update(measure_matmul(args), batch=1, frames=0)  # one n x n product per "sample"
  else:
    result.update(measure_step(args))
  result['peak_rss_mib'] = peak_rss_mib()
  return result


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--measure', required=True, choices=[*SUBJECTS, 'matmul_f32'])
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--frames', type=int, default=64)
  parser.add_argument('--warmup', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--matmul_size', type=int, default=2048)
  return parser.parse_args(argv)


if __name__ == '__main__':
  print(json.dumps(run_one(parse_args())))
