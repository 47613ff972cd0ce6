"""Per-network training state and the optimisers of the paper's appendix.

A `NetState` holds one network (or, with a leading seed axis on every leaf, a bank of networks of one
architecture trained together under `jax.vmap`). Each network has its own optimizer state: the
anonymizer, the adversary and each pretraining bank are never stepped by one shared optimizer.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class NetState:
  """params, batch_stats (an empty dict for networks without BatchNorm), opt_state, step."""
  params: Any
  batch_stats: Any
  opt_state: Any
  step: jnp.ndarray

  @property
  def variables(self) -> dict:
    """The Linen variables dict for `apply`."""
    if self.batch_stats:
      return {'params': self.params, 'batch_stats': self.batch_stats}
    return {'params': self.params}


def step_schedule(lr: float, steps_per_epoch: int, milestones: Sequence[int] = (),
                  gamma: float = 0.1) -> optax.Schedule:
  """PyTorch MultiStepLR: lr times gamma after each milestone epoch."""
  boundaries = {int(m) * int(steps_per_epoch): gamma for m in milestones if m > 0}
  return optax.piecewise_constant_schedule(lr, boundaries)


def sgd(lr: float, steps_per_epoch: int, *, milestones: Sequence[int] = (), gamma: float = 0.1,
        momentum: float = 0.9, nesterov: bool = True,
        weight_decay: float = 0.0) -> optax.GradientTransformation:
  """SGD with (nesterov) momentum and PyTorch-style weight decay (added to the gradient first)."""
  return optax.chain(
      optax.add_decayed_weights(weight_decay),
      optax.sgd(step_schedule(lr, steps_per_epoch, milestones, gamma), momentum=momentum,
                nesterov=nesterov))


def stretched(cfg, steps_per_epoch: int):
  """A copy of training section `cfg` whose length is at least cfg.min_steps optimizer steps.

  Epoch counts tuned on a large file give a small one only a few dozen steps (8 epochs of 4
  batches on a 240-sequence set), too few for any network to learn. With `min_steps` > 0 the
  epochs grow to ceil(min_steps / steps_per_epoch) when that is more, and every milestone
  (`milestones`, and the adversary's `privacy_milestones`) moves by the same factor, so the
  schedule keeps its shape in steps. Sections without min_steps (the paper's Table 4 configs)
  come back unchanged.
  """
  min_steps = int(cfg.get('min_steps', 0) or 0)
  epochs = int(cfg.get('epochs', 0))
  if min_steps < 0:
    from skeleton_anon.errors import ConfigError
    raise ConfigError(f'min_steps must be >= 0, got {min_steps}')
  needed = math.ceil(min_steps / max(1, int(steps_per_epoch)))
  if epochs <= 0 or needed <= epochs:
    return cfg
  out = copy.deepcopy(cfg)
  factor = needed / epochs
  out['epochs'] = needed
  for key in ('milestones', 'privacy_milestones'):
    if key in out:
      out[key] = [max(1, round(int(m) * factor)) for m in out[key]]
  return out


def freeze_subtrees(tx: optax.GradientTransformation, params, frozen: Sequence[str]):
  """`tx` on every parameter except the top-level subtrees named in `frozen` (which never move).

  Used to train only the auto-encoder's decoder during anonymization, as the paper does.
  """
  if not frozen:
    return tx
  labels = {name: jax.tree.map(lambda _, n=name: 'frozen' if n in frozen else 'train', sub)
            for name, sub in params.items()}
  return optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()}, labels)


def build_optimizer(cfg, steps_per_epoch: int, params=None) -> optax.GradientTransformation:
  """An optimiser from a config section with keys optimizer ('sgd'|'adam'), lr, weight_decay,
  milestones, gamma, momentum, nesterov and optionally clip_norm (global gradient norm clip,
  0 = off) and frozen (top-level param subtrees that never move)."""
  kind = cfg.get('optimizer', 'sgd')
  if kind == 'sgd':
    tx = sgd(cfg.lr, steps_per_epoch, milestones=tuple(cfg.get('milestones', ())),
             gamma=cfg.get('gamma', 0.1), momentum=cfg.get('momentum', 0.9),
             nesterov=cfg.get('nesterov', True), weight_decay=cfg.get('weight_decay', 0.0))
  elif kind == 'adam':
    tx = optax.chain(optax.add_decayed_weights(cfg.get('weight_decay', 0.0)),
                     optax.adam(step_schedule(cfg.lr, steps_per_epoch,
                                              tuple(cfg.get('milestones', ())),
                                              cfg.get('gamma', 0.1))))
  else:
    from skeleton_anon.errors import ConfigError
    raise ConfigError(f"optimizer {kind!r} is not one of 'sgd', 'adam'")
  clip = float(cfg.get('clip_norm', 0.0))
  if clip > 0:
    # Steep pretrained classifiers can send the anonymizer's first gradients off the scale.
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  frozen = tuple(cfg.get('frozen', ()))
  if frozen and params is not None:
    tx = freeze_subtrees(tx, params, frozen)
  return tx


def init_state(variables: dict, tx: optax.GradientTransformation) -> NetState:
  """A fresh NetState from Linen variables (one network)."""
  params = variables['params']
  return NetState(params=params, batch_stats=variables.get('batch_stats', {}),
                  opt_state=tx.init(params), step=jnp.zeros((), jnp.int32))


def init_bank_state(variables: dict, tx: optax.GradientTransformation) -> NetState:
  """A NetState for a bank: `variables` has a leading seed axis on every leaf."""
  return jax.vmap(lambda v: init_state(v, tx))(variables)
