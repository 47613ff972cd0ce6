"""Classifier banks: initialise several seeds of one architecture, train them together, predict.

A bank's variables carry a leading seed axis; member i is initialised from jax.random.key(seeds[i])
alone, so the same seed gives the same starting network whichever bank it sits in.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from skeleton_anon.errors import ConfigError
from skeleton_anon.train import data_iter, parallel, state as state_lib, steps
from skeleton_anon.train.checkpoint import has_checkpoint
from skeleton_anon.train.loop import DEFAULT_LOG_EVERY, LoopResult, train_loop


@dataclasses.dataclass
class Bank:
  """S trained classifiers of one architecture, stacked on a leading seed axis.

  arch: registry name; task: 'action' or 'privacy'; role: 'trained_against', 'holdout_seed',
  'holdout_arch' or 'retrained' (report.json's roles); model: the Linen module shared by all
  members; variables: {'params', 'batch_stats'?} with leading axis S; seeds: the S init seeds;
  num_classes: K; history: per-epoch training metrics (means over members).
  """
  arch: str
  task: str
  role: str
  model: nn.Module
  variables: dict
  seeds: tuple[int, ...]
  num_classes: int
  history: list = dataclasses.field(default_factory=list)
  # With a validation split: {'accuracy': [S] best validation top-1, 'epoch': [S] the epoch
  # each member's variables come from, 'samples': validation size, 'by': how it was drawn}.
  validation: dict | None = None

  @property
  def size(self) -> int:
    return len(self.seeds)

  def member(self, i: int) -> dict:
    """Variables of member i (no seed axis), e.g. to hand one classifier to other code."""
    return jax.tree.map(lambda a: a[i], self.variables)


def init_bank(model: nn.Module, seeds: Sequence[int], example_x: np.ndarray, *,
              abstract: bool = False) -> dict:
  """Stacked initial variables of `model` for each seed; example_x: [n, M, T, V, C], n >= 1.

  abstract=True returns ShapeDtypeStructs only (no compile, no compute), enough to restore a
  checkpoint into.
  """
  x = jnp.asarray(example_x[:2])
  def init_one(key):
    params_key, dropout_key = jax.random.split(key)
    return model.init({'params': params_key, 'dropout': dropout_key}, x, train=False)
  keys = jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])
  init = jax.vmap(lambda k: init_one(jax.random.wrap_key_data(k)))
  return jax.eval_shape(init, keys) if abstract else jax.jit(init)(keys)


def section_precision(cfg) -> str:
  """A training section's `precision` (steps.PRECISIONS; 'float32' when the key is missing)."""
  precision = str(cfg.get('precision', 'float32'))
  if precision not in steps.PRECISIONS:
    raise ConfigError(f'precision {precision!r} is not one of {steps.PRECISIONS}')
  return precision


def train_bank_variables(model: nn.Module, variables: dict, arrays: dict, train_cfg, *,
                         mesh: Mesh, checkpoint_dir: str, seed: int, name: str, writer=None,
                         stop_after_steps: int = 0, bank_form: str = 'vmap',
                         member_ids: Sequence[int] | None = None,
                         validation: dict | None = None) -> LoopResult:
  """Trains a bank on arrays {'x', 'lengths', 'label'} with train_cfg (epochs, batch_size, lr,
  weight_decay, milestones, ...). Resumes from `checkpoint_dir` (then `variables` may be abstract,
  see init_bank); returns the loop result whose states['bank'] is the final NetState (leading seed
  axis).

  train_cfg.precision (steps.PRECISIONS, default 'float32') sets the compute dtype and
  train_cfg.log_every how often the loop fetches metrics (loop.train_loop). `seed` sets the
  batch order and the step keys; `member_ids` (the init seeds) give each member
  its own dropout stream (steps.bank_train_step). With the same `seed`, a member trained in a
  bank of several ends where it would alone: the bank a role names is its seeds' classifiers.

  train_cfg.min_steps stretches short runs (state_lib.stretched). `validation` {'x', 'lengths',
  'label'}: held-out training samples scored after every epoch; each member keeps the variables
  of its best validation epoch (ties go to the later epoch): the result's states['bank'] holds
  those, and `selection(result)` says which epoch and accuracy each member's came from.
  """
  num = len(arrays['label'])
  iterator = data_iter.EpochIterator(num, train_cfg.batch_size, seed=seed)
  train_cfg = state_lib.stretched(train_cfg, iterator.steps_per_epoch)
  tx = state_lib.build_optimizer(train_cfg, iterator.steps_per_epoch)
  states = {}
  if has_checkpoint(checkpoint_dir):
    # Only the tree structure matters: the loop restores every leaf from the checkpoint.
    states['bank'] = jax.eval_shape(lambda v: state_lib.init_bank_state(v, tx), variables)
    if validation is not None:
      states['best'] = jax.eval_shape(_initial_best, variables)
  else:
    states['bank'] = parallel.replicate(state_lib.init_bank_state(variables, tx), mesh)
    if validation is not None:
      states['best'] = parallel.replicate(_initial_best(variables), mesh)
  member_ids = None if member_ids is None else tuple(int(i) for i in member_ids)
  step = steps.jit_step(functools.partial(steps.bank_train_step, bank_form=bank_form,
                                          member_ids=member_ids,
                                          precision=section_precision(train_cfg)), model, tx)

  def prepare(_, indices):     # runs ahead of the step, in the loop's prefetch thread
    return parallel.gather_batch(arrays, indices, iterator.batch_size, mesh)

  def step_fn(states, batch, rng, _):
    new_state, metrics = step(states['bank'], batch, rng)
    return {**states, 'bank': new_state}, metrics

  epoch_end = None
  if validation is not None:
    def epoch_end(states, epoch):
      current = states['bank'].variables
      logits = predict_logits(model, current, validation['x'], validation['lengths'], mesh=mesh,
                              batch_size=train_cfg.batch_size, bank_form=bank_form)
      accuracy = np.mean(np.argmax(logits, axis=-1) == validation['label'][None], axis=1)
      best = _keep_best(states['best'], current, jnp.asarray(accuracy, jnp.float32),
                        jnp.int32(epoch + 1))
      return {**states, 'best': best}, {
          'val_accuracy': float(np.mean(accuracy)),
          'val_best_accuracy': float(np.mean(_fetch(best['accuracy'])))}

  result = train_loop(name=name, states=states, step_fn=step_fn, iterator=iterator,
                      num_epochs=train_cfg.epochs, mesh=mesh, checkpoint_dir=checkpoint_dir,
                      rng=jax.random.key(seed), writer=writer, stop_after_steps=stop_after_steps,
                      checkpoint_every=train_cfg.get('checkpoint_every', 0), prepare=prepare,
                      log_every=train_cfg.get('log_every', DEFAULT_LOG_EVERY),
                      epoch_end=epoch_end)
  if validation is not None and result.finished:
    chosen = result.states['best']['variables']
    result.states['bank'] = result.states['bank'].replace(
        params=chosen['params'], batch_stats=chosen.get('batch_stats', {}))
  return result


def _initial_best(variables: dict) -> dict:
  """The best-epoch record before any epoch: the initial variables, accuracy -1."""
  size = jax.tree.leaves(variables)[0].shape[0]
  return {'variables': jax.tree.map(jnp.array, variables),
          'accuracy': jnp.full((size,), -1.0, jnp.float32),
          'epoch': jnp.zeros((size,), jnp.int32)}


@jax.jit
def _keep_best(best: dict, current: dict, accuracy: jax.Array, epoch: jax.Array) -> dict:
  """Per member: the current variables where validation accuracy is at least the best so far."""
  better = accuracy >= best['accuracy']

  def pick(old, new):
    return jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)

  return {'variables': jax.tree.map(pick, best['variables'], current),
          'accuracy': jnp.where(better, accuracy, best['accuracy']),
          'epoch': jnp.where(better, epoch, best['epoch'])}


def selection(result: LoopResult) -> dict | None:
  """{'accuracy': [S], 'epoch': [S]} of a validated training, or None without validation."""
  best = result.states.get('best')
  if best is None:
    return None
  return {'accuracy': [float(a) for a in _fetch(best['accuracy'])],
          'epoch': [int(e) for e in _fetch(best['epoch'])]}


_bank_logits = jax.jit(steps.bank_logits, static_argnums=(0, 3))
_anonymize = jax.jit(steps.anonymize_batch, static_argnums=0)


def _fetch(array: jax.Array) -> np.ndarray:
  """A global array's full value on every process."""
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))
  return np.asarray(array)


def predict_logits(model: nn.Module, variables: dict, x: np.ndarray, lengths: np.ndarray, *,
                   mesh: Mesh, batch_size: int = 64, bank_form: str = 'vmap') -> np.ndarray:
  """Eval-mode logits [S, N, K] of a bank over all of x [N, M, T, V, C], batched and sharded."""
  variables = parallel.replicate(variables, mesh)
  out = []
  for idx in data_iter.sequential_batches(len(x), batch_size):
    batch = parallel.gather_batch({'x': x}, idx, batch_size, mesh)
    out.append(_fetch(_bank_logits(model, variables, batch['x'], bank_form))[:, :len(idx)])
  return np.concatenate(out, axis=1)


def apply_anonymizer(model: nn.Module, variables: dict, x: np.ndarray, lengths: np.ndarray, *,
                     mesh: Mesh, batch_size: int = 64) -> np.ndarray:
  """f(x) for all of x, batched and sharded; float32 with x's shape."""
  variables = parallel.replicate(variables, mesh)
  out = []
  for idx in data_iter.sequential_batches(len(x), batch_size):
    batch = parallel.gather_batch({'x': x, 'lengths': lengths}, idx, batch_size, mesh)
    out.append(_fetch(_anonymize(model, variables, batch['x'], batch['lengths']))[:len(idx)])
  return np.concatenate(out, axis=0).astype(np.float32)
