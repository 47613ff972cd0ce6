"""Training the anonymizer: auto-encoder pretraining, then ensemble (Algorithm 2) or adversarial
(Algorithm 1) anonymization against classifier banks, optionally against attackers that restart
from scratch and a statistics attacker refitted on every batch (train/adversaries.py)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh

from skeleton_anon.data import features as features_lib
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.train import adversaries, data_iter, parallel, state as state_lib, steps
from skeleton_anon.train.loop import DEFAULT_LOG_EVERY, LoopResult, train_loop
from skeleton_anon.train.pretrain import Bank, section_precision

ALGORITHMS = ('ensemble', 'adversarial')
# How Algorithm 1 interleaves min and max steps and which batches they see (plan_step).
SCHEDULES = ('paper', 'shared', 'reference')


def pretrain_reconstruction(model: nn.Module, variables: dict, arrays: dict, train_cfg, *,
                            mesh: Mesh, checkpoint_dir: str, seed: int, name: str = 'autoencoder',
                            writer=None, stop_after_steps: int = 0) -> LoopResult:
  """Trains an anonymizer to reproduce its input (masked MSE); states['anonymizer'] is the result."""
  iterator = data_iter.EpochIterator(len(arrays['x']), train_cfg.batch_size, seed=seed)
  train_cfg = state_lib.stretched(train_cfg, iterator.steps_per_epoch)
  tx = state_lib.build_optimizer(train_cfg, iterator.steps_per_epoch)
  anon_state = parallel.replicate(state_lib.init_state(variables, tx), mesh)
  step = steps.jit_step(functools.partial(steps.reconstruction_step,
                                          precision=section_precision(train_cfg)), model, tx)

  def prepare(_, indices):     # runs ahead of the step, in the loop's prefetch thread
    return parallel.gather_batch(arrays, indices, iterator.batch_size, mesh)

  def step_fn(states, batch, rng, _):
    new_state, metrics = step(states['anonymizer'], batch)
    return {'anonymizer': new_state}, metrics

  return train_loop(name=name, states={'anonymizer': anon_state}, step_fn=step_fn,
                    iterator=iterator, num_epochs=train_cfg.epochs, mesh=mesh,
                    checkpoint_dir=checkpoint_dir, rng=jax.random.key(seed), writer=writer,
                    stop_after_steps=stop_after_steps, prepare=prepare,
                    log_every=train_cfg.get('log_every', DEFAULT_LOG_EVERY))


def plan_step(schedule: str, step: int, k: int, indices, own_batches: Callable[[int], Any]):
  """(min_indices or None, max_indices or None): the batches global step `step` trains on.

  'paper' (Algorithm 1 as written): every step is a min step on the iterator's batch, and after
  every k-th min step the max step draws its own minibatch, batch step // k of its own shuffled
  stream (`own_batches`). 'shared' (this package before issue 12): the same, but the max step
  reuses the min step's batch. 'reference' (the reference code's loop): each batch is used for
  one step only, k min steps then one max step, counted over global steps.
  """
  if schedule == 'reference':
    return (indices, None) if step % (k + 1) < k else (None, indices)
  if (step + 1) % k:
    return indices, None
  return indices, (indices if schedule == 'shared' else own_batches(step // k))


class OwnBatches:
  """The max step's own minibatch stream: batch j of an EpochIterator seeded apart from the min
  step's. A pure function of j, so a resumed run draws the same batches without extra state."""

  def __init__(self, num_samples: int, batch_size: int, seed: int):
    self.iterator = data_iter.EpochIterator(num_samples, batch_size, seed=seed)

  def __call__(self, j: int) -> np.ndarray:
    epoch, position = divmod(int(j), self.iterator.steps_per_epoch)
    start = position * self.iterator.batch_size
    return self.iterator.order(epoch)[start:start + self.iterator.batch_size]


def _steps_per_epoch(schedule: str, spe: int, k: int) -> tuple[int, int]:
  """(min steps, max steps) per epoch of the iterator: each optimiser's schedule counts its own."""
  if schedule == 'reference':
    return max(1, round(spe * k / (k + 1))), max(1, round(spe / (k + 1)))
  return spe, max(1, round(spe / k))


def _feature_attack(cfg, layout: Layout | None, num_classes: int):
  """The statistics attacker of config.anonymize.feature_attack_* (None when its weight is 0)."""
  weight = float(cfg.get('feature_attack_weight', 0.0))
  if weight <= 0:
    return None
  if layout is None:
    raise ConfigError('anonymize.feature_attack_weight > 0 needs the skeleton layout '
                      '(train_anonymizer(..., layout=...))')
  loss = cfg.get('feature_attack_loss', 'margin')
  family = cfg.get('feature_attack_family', 'body+motion')
  if loss not in adversaries.FEATURE_LOSSES:
    raise ConfigError(f'anonymize.feature_attack_loss {loss!r} is not one of '
                      f'{adversaries.FEATURE_LOSSES}')
  if family not in features_lib.FAMILIES:
    raise ConfigError(f'anonymize.feature_attack_family {family!r} is not one of '
                      f'{features_lib.FAMILIES}')
  return adversaries.FeatureAttack(
      layout=layout, num_classes=int(num_classes), weight=weight,
      ridge=float(cfg.get('feature_attack_ridge', 0.1)),
      scale=float(cfg.get('feature_attack_scale', 10.0)), family=family, loss=loss)


def _member_keys(seed: int, step: int, num: int) -> jax.Array:
  """Init keys of a population's members restarted after `step` (-1: the initial population)."""
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), step + 1), num)


def train_anonymizer(anon_model: nn.Module, anon_variables: dict, action_bank: Bank | None,
                     privacy_bank: Bank, arrays: dict, cfg, *, mesh: Mesh, checkpoint_dir: str,
                     seed: int, frozen: Sequence[str] = (), writer=None,
                     stop_after_steps: int = 0, bank_form: str = 'vmap',
                     layout: Layout | None = None) -> LoopResult:
  """Trains the anonymizer f on arrays {'x', 'lengths', 'action', 'privacy'}.

  cfg (config.anonymize): algorithm, epochs, batch_size, lr, weight_decay, milestones, alpha, beta,
  loss_form; for 'adversarial' k (min steps per max step), adversarial_schedule (plan_step), the
  adversary's privacy_lr, privacy_weight_decay, privacy_milestones (counted in its own steps per
  epoch), num_adversaries (0: start from `privacy_bank`'s members; N: a population of N members
  initialised from scratch) and adversary_reset_every (>0: member i restarts from scratch every
  that many steps, staggered; adversaries.reset_mask); for either algorithm feature_attack_weight
  (> 0 adds the cross-fitted statistics attacker, which needs `layout`) with
  feature_attack_ridge, _scale, _family, _loss; precision (steps.PRECISIONS) and log_every
  (loop.train_loop). Missing keys take those defaults. 'ensemble'
  minimises Eq. 3 against the fixed banks. `action_bank` None (single-action data) trains
  without the action term. `frozen` names anonymizer parameter subtrees that
  never move (the auto-encoder's 'encoder'). Result states: 'anonymizer' and, when adversarial,
  'adversary'. `bank_form`: how bank members run in a step (steps.BANK_FORMS).
  """
  algorithm = cfg.algorithm
  if algorithm not in ALGORITHMS:
    raise ConfigError(f'anonymize.algorithm {algorithm!r} is not one of {ALGORITHMS}')
  if cfg.loss_form not in steps.LOSS_FORMS:
    raise ConfigError(f'anonymize.loss_form {cfg.loss_form!r} is not one of '
                      f'{tuple(steps.LOSS_FORMS)}')
  schedule = cfg.get('adversarial_schedule', 'paper')
  if schedule not in SCHEDULES:
    raise ConfigError(f'anonymize.adversarial_schedule {schedule!r} is not one of {SCHEDULES}')
  num_adversaries = int(cfg.get('num_adversaries', 0))
  reset_every = int(cfg.get('adversary_reset_every', 0))
  if algorithm != 'adversarial' and (num_adversaries or reset_every):
    raise ConfigError("anonymize.num_adversaries and adversary_reset_every need "
                      "algorithm='adversarial' (the ensemble's classifiers are never trained)")
  k = int(cfg.k) if algorithm == 'adversarial' else 1
  if k < 1:
    raise ConfigError(f'anonymize.k must be >= 1, got {k}')
  weights = steps.LOSS_FORMS[cfg.loss_form](float(cfg.alpha), float(cfg.beta))
  feature_attack = _feature_attack(cfg, layout, privacy_bank.num_classes)
  precision = section_precision(cfg)
  iterator = data_iter.EpochIterator(len(arrays['x']), cfg.batch_size, seed=seed)
  cfg = state_lib.stretched(cfg, iterator.steps_per_epoch)
  min_spe, max_spe = _steps_per_epoch(schedule if algorithm == 'adversarial' else 'paper',
                                      iterator.steps_per_epoch, k)
  tx = state_lib.build_optimizer(cfg, min_spe)
  if frozen:
    tx = state_lib.freeze_subtrees(tx, anon_variables['params'], frozen)
  states = {'anonymizer': state_lib.init_state(anon_variables, tx)}
  action_vars = None if action_bank is None else parallel.replicate(action_bank.variables, mesh)
  min_fn = steps.jit_step(functools.partial(steps.min_step, bank_form=bank_form,
                                            feature_attack=feature_attack, precision=precision),
                          anon_model, None if action_bank is None else action_bank.model,
                          privacy_bank.model, tx, weights)
  fresh_fn = None
  if algorithm == 'adversarial':
    adv_cfg = dict(optimizer='sgd', lr=cfg.privacy_lr, weight_decay=cfg.privacy_weight_decay,
                   milestones=tuple(cfg.privacy_milestones))
    adv_tx = state_lib.build_optimizer(_Section(adv_cfg), max_spe)
    population_seed = seed + 104729
    if num_adversaries or reset_every:
      fresh_fn = adversaries.fresh_bank_state_fn(privacy_bank.model, arrays['x'][:2], adv_tx)
    if num_adversaries:
      states['adversary'] = fresh_fn(_member_keys(population_seed, -1, num_adversaries))
    else:
      states['adversary'] = state_lib.init_bank_state(privacy_bank.variables, adv_tx)
    num_members = jax.tree.leaves(states['adversary'].params)[0].shape[0]
    max_fn = steps.jit_step(functools.partial(steps.max_step, bank_form=bank_form,
                                              precision=precision), anon_model,
                            privacy_bank.model, adv_tx)
    own_batches = OwnBatches(len(arrays['x']), cfg.batch_size, seed + 7919)
  else:
    privacy_vars = parallel.replicate(privacy_bank.variables, mesh)
  states = parallel.replicate(states, mesh)

  def gather(indices):
    return None if indices is None else parallel.gather_batch(arrays, indices,
                                                              iterator.batch_size, mesh)

  def prepare(step, indices):
    """The step's batches, gathered ahead in the loop's prefetch thread: (min batch, max batch),
    either None when the step has no such update (plan_step is a pure function of the step)."""
    if algorithm != 'adversarial':
      return gather(indices), None
    return tuple(gather(i) for i in plan_step(schedule, step, k, indices, own_batches))

  def step_fn(states, batches, rng, step):
    adversary = states.get('adversary')
    min_batch, max_batch = batches
    if adversary is None:
      anon_state, metrics = min_fn(states['anonymizer'], action_vars, privacy_vars,
                                   min_batch, jax.random.fold_in(rng, 2))
      return {'anonymizer': anon_state}, metrics
    anon_state, metrics = states['anonymizer'], {}
    if min_batch is not None:
      anon_state, metrics = min_fn(anon_state, action_vars, adversary.variables, min_batch,
                                   jax.random.fold_in(rng, 2))
    if max_batch is not None:
      adversary, adv_metrics = max_fn(adversary, anon_state.variables, max_batch, rng)
      metrics = {**metrics, 'adversary_loss': adv_metrics['loss'],
                 'adversary_accuracy': adv_metrics['accuracy']}
    mask = adversaries.reset_mask(step, num_members, reset_every)
    if any(mask):
      fresh = parallel.replicate(fresh_fn(_member_keys(population_seed, step, num_members)), mesh)
      adversary = adversaries.reset_members(adversary, fresh, mask)
    return {'anonymizer': anon_state, 'adversary': adversary}, metrics

  return train_loop(name='anonymize', states=states, step_fn=step_fn, iterator=iterator,
                    num_epochs=cfg.epochs, mesh=mesh, checkpoint_dir=checkpoint_dir,
                    rng=jax.random.key(seed), writer=writer, stop_after_steps=stop_after_steps,
                    checkpoint_every=cfg.get('checkpoint_every', 0), prepare=prepare,
                    log_every=cfg.get('log_every', DEFAULT_LOG_EVERY))


class _Section(dict):
  """A dict with attribute access, to build an optimizer from derived settings."""
  __getattr__ = dict.__getitem__
