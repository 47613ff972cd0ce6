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
                         member_ids: Sequence[int] | None = None) -> LoopResult:
  """Trains a bank on arrays {'x', 'lengths', 'label'} with train_cfg (epochs, batch_size, lr,
  weight_decay, milestones, ...). Resumes from `checkpoint_dir` (then `variables` may be abstract,
  see init_bank); returns the loop result whose states['bank'] is the final NetState (leading seed
  axis).

  train_cfg.precision (steps.PRECISIONS, default 'float32') sets the compute dtype and
  train_cfg.log_every how often the loop fetches metrics (loop.train_loop). `seed` sets the
  batch order and the step keys; `member_ids` (the init seeds) give each member
  its own dropout stream (steps.bank_train_step). With the same `seed`, a member trained in a
  bank of several ends where it would alone: the bank a role names is its seeds' classifiers.
  """
  num = len(arrays['label'])
  iterator = data_iter.EpochIterator(num, train_cfg.batch_size, seed=seed)
  tx = state_lib.build_optimizer(train_cfg, iterator.steps_per_epoch)
  if has_checkpoint(checkpoint_dir):
    # Only the tree structure matters: the loop restores every leaf from the checkpoint.
    bank_state = jax.eval_shape(lambda v: state_lib.init_bank_state(v, tx), variables)
  else:
    bank_state = parallel.replicate(state_lib.init_bank_state(variables, tx), mesh)
  member_ids = None if member_ids is None else tuple(int(i) for i in member_ids)
  step = steps.jit_step(functools.partial(steps.bank_train_step, bank_form=bank_form,
                                          member_ids=member_ids,
                                          precision=section_precision(train_cfg)), model, tx)

  def prepare(_, indices):     # runs ahead of the step, in the loop's prefetch thread
    return parallel.gather_batch(arrays, indices, iterator.batch_size, mesh)

  def step_fn(states, batch, rng, _):
    new_state, metrics = step(states['bank'], batch, rng)
    return {'bank': new_state}, metrics

  return train_loop(name=name, states={'bank': bank_state}, step_fn=step_fn, iterator=iterator,
                    num_epochs=train_cfg.epochs, mesh=mesh, checkpoint_dir=checkpoint_dir,
                    rng=jax.random.key(seed), writer=writer, stop_after_steps=stop_after_steps,
                    checkpoint_every=train_cfg.get('checkpoint_every', 0), prepare=prepare,
                    log_every=train_cfg.get('log_every', DEFAULT_LOG_EVERY))


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
