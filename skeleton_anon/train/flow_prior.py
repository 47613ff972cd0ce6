"""Training the flow prior (models/flow_prior.py) on a labelled training set.

The closed-form part is the style prior's (front end, action classifier, encoding, a subspace
shared by every action); the network is trained by flow matching with the package's one loop
(train/loop.py: resumable Orbax checkpoints, prefetched batches sharded over the mesh, NaN
checks), so it runs data-parallel on any number of devices like every other stage.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import flow_prior as flow_lib
from skeleton_anon.models.style_prior import place
from skeleton_anon.train import data_iter, parallel, state as state_lib
from skeleton_anon.train.loop import DEFAULT_LOG_EVERY, LoopResult, train_loop
from skeleton_anon.train.style_prior import fit_style_prior

# The coordinate scale is never below this (a direction with no variance is not amplified).
SCALE_FLOOR = 1e-6
# An epoch of the loop (one checkpoint, one history entry) is at least this many steps: a
# 240-sequence set would otherwise checkpoint every 4 steps.
MIN_STEPS_PER_EPOCH = 200


def flow_step(model, tx, state: state_lib.NetState, batch: dict, rng: jax.Array):
  """One flow-matching update (pure; jit it with the model and optimiser bound)."""
  loss, grads = jax.value_and_grad(
      lambda p: flow_lib.flow_matching_loss(model, p, batch, rng))(state.params)
  deltas, opt_state = tx.update(grads, state.opt_state, state.params)
  return state.replace(params=optax.apply_updates(state.params, deltas), opt_state=opt_state,
                       step=state.step + 1), {'loss': loss}


def coordinate_scale(z: np.ndarray, whiten: float) -> np.ndarray:
  """float32 [K]: the flow's unit along each of the coordinates z [N, K]: std ** whiten times
  gmean(std) ** (1 - whiten), so whiten=1 is per-direction standardisation and whiten=0 one
  scale for all (the geometric mean of the stds) that keeps the directions' proportions."""
  std = np.maximum(z.std(axis=0).astype(np.float64), SCALE_FLOOR)
  overall = np.exp(np.mean(np.log(std)))
  return np.maximum(std ** whiten * overall ** (1.0 - whiten), SCALE_FLOOR).astype(np.float32)


def training_coordinates(prior, x: np.ndarray, lengths: np.ndarray, action: np.ndarray,
                         layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(z [N, K] unscaled coordinates, action rows [N], lengths [N]) of the training samples,
  through the prior's own front end and encoding (labels, not predictions: it learns p(x|a))."""
  retargeted = transforms.retarget(x, lengths, layout, prior.bone_lengths)
  front = place(retargeted, lengths, layout, prior.reference, prior.placement)
  encoded = transforms.direction_encoding(front, lengths, layout, prior.frames)
  rows = np.searchsorted(prior.actions, action)
  flat = encoded.reshape(len(x), -1).astype(np.float64)
  z = (flat - prior.mean[rows]) @ prior.basis[0]
  return z.astype(np.float32), rows.astype(np.int32), np.asarray(lengths, np.int32)


def fit_flow_prior(x: np.ndarray, lengths: np.ndarray, action: np.ndarray, subject: np.ndarray,
                   layout: Layout, knobs: dict, train_cfg, *, mesh: Mesh, checkpoint_dir: str,
                   seed: int = 0, writer=None, stop_after_steps: int = 0
                   ) -> tuple[flow_lib.FlowPrior, LoopResult]:
  """A trained FlowPrior and its loop result.

  knobs: models/flow_prior.KNOBS; train_cfg: a training section (optimizer, lr, epochs,
  batch_size, min_steps, milestones, weight_decay, log_every).
  """
  unknown = sorted(set(knobs) - set(flow_lib.KNOBS))
  if unknown:
    raise ConfigError(f'anonymizer flow_prior: unknown knobs {unknown}; known: '
                      f'{", ".join(flow_lib.KNOBS)}')
  knobs = {**flow_lib.DEFAULT_KNOBS, **knobs}
  if not 0.0 <= float(knobs['whiten']) <= 1.0:
    raise ConfigError(f"anonymizer flow_prior: knob whiten must be in [0, 1], got "
                      f"{knobs['whiten']}")
  x = np.asarray(x, np.float32)
  lengths = np.asarray(lengths, np.int32)
  # shrink=1: one subspace for all actions; the flow models the rest.
  prior = fit_style_prior(x, lengths, action, subject, layout,
                          components=int(knobs['components']), frames=int(knobs['frames']),
                          seed=seed, shrink=1.0, vary_body=float(knobs['vary_body']),
                          output_duration=str(knobs['output_duration']))
  z, rows, lengths = training_coordinates(prior, x, lengths, action, layout)
  scale = coordinate_scale(z, float(knobs['whiten']))
  log_len = np.log(np.maximum(lengths, 1).astype(np.float32))
  mean_len, std_len = float(log_len.mean()), float(max(log_len.std(), 1e-3))
  model = flow_lib.build_velocity_field(prior, knobs)
  flow = flow_lib.FlowPrior(prior=prior, model=model, variables={}, scale=scale,
                            log_duration_mean=mean_len, log_duration_std=std_len,
                            sample_steps=int(knobs['sample_steps']),
                            condition_duration=bool(knobs['duration']),
                            texture=float(knobs['texture']))
  arrays = {'u': (z / scale).astype(np.float32), 'action': rows,
            'log_duration': flow.log_duration(lengths)}
  # Small sets: the loop's epoch runs over the samples several times (indices modulo N).
  repeat = max(1, -(-MIN_STEPS_PER_EPOCH * int(train_cfg.batch_size) // len(z)))
  iterator = data_iter.EpochIterator(len(z) * repeat, train_cfg.batch_size, seed=seed)
  train_cfg = state_lib.stretched(train_cfg, iterator.steps_per_epoch)
  tx = state_lib.build_optimizer(train_cfg, iterator.steps_per_epoch)
  variables = flow_lib.init_variables(model, seed)
  states = {'flow': parallel.replicate(state_lib.init_state(variables, tx), mesh)}
  step = jax.jit(functools.partial(flow_step, model, tx), donate_argnums=(0,))

  def prepare(_, indices):
    return parallel.gather_batch(arrays, np.asarray(indices) % len(z), iterator.batch_size, mesh)

  def step_fn(states, batch, rng, _):
    new_state, metrics = step(states['flow'], batch, rng)
    return {'flow': new_state}, metrics

  result = train_loop(name='flow_prior', states=states, step_fn=step_fn, iterator=iterator,
                      num_epochs=train_cfg.epochs, mesh=mesh, checkpoint_dir=checkpoint_dir,
                      rng=jax.random.key(seed), writer=writer, stop_after_steps=stop_after_steps,
                      checkpoint_every=train_cfg.get('checkpoint_every', 0), prepare=prepare,
                      log_every=train_cfg.get('log_every', DEFAULT_LOG_EVERY))
  flow.variables = {'params': jax.device_get(result.states['flow'].params)}
  return flow, result
