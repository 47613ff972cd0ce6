"""Training the anonymizer: auto-encoder pretraining, then ensemble (Algorithm 2) or adversarial
(Algorithm 1) anonymization against classifier banks."""

from __future__ import annotations

import functools

from typing import Sequence

import flax.linen as nn
import jax
from jax.sharding import Mesh

from skeleton_anon.errors import ConfigError
from skeleton_anon.train import data_iter, parallel, state as state_lib, steps
from skeleton_anon.train.loop import LoopResult, train_loop
from skeleton_anon.train.pretrain import Bank

ALGORITHMS = ('ensemble', 'adversarial')


def pretrain_reconstruction(model: nn.Module, variables: dict, arrays: dict, train_cfg, *,
                            mesh: Mesh, checkpoint_dir: str, seed: int, name: str = 'autoencoder',
                            writer=None, stop_after_steps: int = 0) -> LoopResult:
  """Trains an anonymizer to reproduce its input (masked MSE); states['anonymizer'] is the result."""
  iterator = data_iter.EpochIterator(len(arrays['x']), train_cfg.batch_size, seed=seed)
  tx = state_lib.build_optimizer(train_cfg, iterator.steps_per_epoch)
  anon_state = parallel.replicate(state_lib.init_state(variables, tx), mesh)
  step = steps.jit_step(steps.reconstruction_step, model, tx)

  def step_fn(states, indices, rng, _):
    batch = parallel.gather_batch(arrays, indices, iterator.batch_size, mesh)
    new_state, metrics = step(states['anonymizer'], batch)
    return {'anonymizer': new_state}, metrics

  return train_loop(name=name, states={'anonymizer': anon_state}, step_fn=step_fn,
                    iterator=iterator, num_epochs=train_cfg.epochs, mesh=mesh,
                    checkpoint_dir=checkpoint_dir, rng=jax.random.key(seed), writer=writer,
                    stop_after_steps=stop_after_steps)


def train_anonymizer(anon_model: nn.Module, anon_variables: dict, action_bank: Bank,
                     privacy_bank: Bank, arrays: dict, cfg, *, mesh: Mesh, checkpoint_dir: str,
                     seed: int, frozen: Sequence[str] = (), writer=None,
                     stop_after_steps: int = 0, bank_form: str = 'vmap') -> LoopResult:
  """Trains the anonymizer f on arrays {'x', 'lengths', 'action', 'privacy'}.

  cfg (config.anonymize): algorithm, epochs, batch_size, lr, weight_decay, milestones, alpha, beta,
  loss_form, and for 'adversarial' k (min steps per max step) and the adversary's privacy_lr,
  privacy_weight_decay, privacy_milestones. 'ensemble' minimises Eq. 3 against the fixed banks;
  'adversarial' starts the adversary from `privacy_bank` (usually one member) and alternates k min
  steps with one max step on the same batch stream. `frozen` names anonymizer parameter subtrees
  that never move (the auto-encoder's 'encoder'). Result states: 'anonymizer' and, when
  adversarial, 'adversary'. `bank_form`: how bank members run in a step (steps.BANK_FORMS).
  """
  algorithm = cfg.algorithm
  if algorithm not in ALGORITHMS:
    raise ConfigError(f'anonymize.algorithm {algorithm!r} is not one of {ALGORITHMS}')
  if cfg.loss_form not in steps.LOSS_FORMS:
    raise ConfigError(f'anonymize.loss_form {cfg.loss_form!r} is not one of '
                      f'{tuple(steps.LOSS_FORMS)}')
  weights = steps.LOSS_FORMS[cfg.loss_form](float(cfg.alpha), float(cfg.beta))
  iterator = data_iter.EpochIterator(len(arrays['x']), cfg.batch_size, seed=seed)
  spe = iterator.steps_per_epoch
  tx = state_lib.build_optimizer(cfg, spe)
  if frozen:
    tx = state_lib.freeze_subtrees(tx, anon_variables['params'], frozen)
  states = {'anonymizer': state_lib.init_state(anon_variables, tx)}
  action_vars = parallel.replicate(action_bank.variables, mesh)
  min_fn = steps.jit_step(functools.partial(steps.min_step, bank_form=bank_form), anon_model,
                          action_bank.model, privacy_bank.model, tx, weights)

  if algorithm == 'adversarial':
    adv_cfg = dict(optimizer='sgd', lr=cfg.privacy_lr, weight_decay=cfg.privacy_weight_decay,
                   milestones=tuple(cfg.privacy_milestones))
    adv_tx = state_lib.build_optimizer(_Section(adv_cfg), spe)
    states['adversary'] = state_lib.init_bank_state(privacy_bank.variables, adv_tx)
    max_fn = steps.jit_step(functools.partial(steps.max_step, bank_form=bank_form), anon_model,
                            privacy_bank.model, adv_tx)
    k = int(cfg.k)
    if k < 1:
      raise ConfigError(f'anonymize.k must be >= 1, got {k}')
  else:
    privacy_vars = parallel.replicate(privacy_bank.variables, mesh)
  states = parallel.replicate(states, mesh)

  def step_fn(states, indices, rng, step):
    batch = parallel.gather_batch(arrays, indices, iterator.batch_size, mesh)
    adversary = states.get('adversary')
    p_vars = privacy_vars if adversary is None else adversary.variables
    anon_state, metrics = min_fn(states['anonymizer'], action_vars, p_vars, batch)
    new = {'anonymizer': anon_state}
    if adversary is not None:
      if (step + 1) % k == 0:
        adversary, adv_metrics = max_fn(adversary, anon_state.variables, batch, rng)
        metrics = {**metrics, 'adversary_loss': adv_metrics['loss'],
                   'adversary_accuracy': adv_metrics['accuracy']}
      new['adversary'] = adversary
    return new, metrics

  return train_loop(name='anonymize', states=states, step_fn=step_fn, iterator=iterator,
                    num_epochs=cfg.epochs, mesh=mesh, checkpoint_dir=checkpoint_dir,
                    rng=jax.random.key(seed), writer=writer, stop_after_steps=stop_after_steps,
                    checkpoint_every=cfg.get('checkpoint_every', 0))


class _Section(dict):
  """A dict with attribute access, to build an optimizer from derived settings."""
  __getattr__ = dict.__getitem__
