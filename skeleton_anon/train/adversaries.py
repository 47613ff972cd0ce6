"""Attackers that anonymization trains against, aimed at the attacker retrained after it.

An anonymizer that only fools classifiers it was optimised against fails the honest test: an
attacker trained from scratch on the anonymized data. Two proxies of that attacker live here:

- An adversary *population* that is re-initialised from scratch during anonymization
  (`reset_mask`, `reset_members`): member i restarts every `reset_every` steps, staggered, so at
  any time the anonymizer faces fresh and experienced attackers and cannot settle into fooling
  one set of weights.
- A differentiable *statistics attacker* (`feature_attack_loss`): inside the min step, a
  closed-form ridge regression from standardised body and motion statistics
  (`data.features.sequence_features`) of f(x) to the private label is fitted on one random half
  of the batch and scored on the other (and the other way round: cross-fitted, every sample
  held out once). It is retrained from nothing on every batch, so its held-out accuracy is what a
  linear attacker retrained on anonymized data would reach, and its gradient says how to lower
  it. A batch must hold several samples of each private class for it to mean anything (subject
  re-identification wants batches of a few times the number of subjects).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from skeleton_anon.data import features as features_lib
from skeleton_anon.data.layouts import Layout
from skeleton_anon.train.state import NetState

FEATURE_LOSSES = ('margin', 'entropy')


@dataclasses.dataclass(frozen=True)
class FeatureAttack:
  """The statistics attacker's settings (config.anonymize.feature_attack_*).

  weight: its term's weight in the anonymizer loss (0 = off). ridge: the penalty relative to the
  mean squared norm of a standardised feature vector. family: the `sequence_features` family.
  loss: 'margin' (the held-out ridge score of the true label minus the mean score over labels,
  floored at 0, its chance value; linear, so it does not saturate when the attacker is
  confident, where a soft accuracy has no gradient left) or 'entropy' (minus the entropy of
  softmax(scale * scores); the scores of one-hot targets live in about [0, 1]).
  """
  layout: Layout
  num_classes: int
  weight: float = 0.0
  ridge: float = 0.1
  scale: float = 10.0
  family: str = 'body+motion'
  loss: str = 'margin'


def _standardise(f: jax.Array, weight: jax.Array) -> jax.Array:
  """Per-feature zero mean and unit variance over real samples; padding rows are zero."""
  w = weight[:, None]
  count = jnp.maximum(jnp.sum(weight), 1.0)
  mean = jnp.sum(f * w, axis=0) / count
  var = jnp.sum(((f - mean) ** 2) * w, axis=0) / count
  return (f - mean) * jax.lax.rsqrt(var + 1e-6) * w


def _halves(weight: jax.Array, rng: jax.Array) -> jax.Array:
  """float [N]: 1 for a random half of the real samples, 0 for the other half and for padding."""
  real = weight > 0
  keys = jax.random.uniform(rng, weight.shape) + jnp.where(real, 0.0, 2.0)  # padding sorts last
  rank = jnp.argsort(jnp.argsort(keys))
  return ((rank % 2 == 0) & real).astype(weight.dtype)


def _ridge_predict(z: jax.Array, targets: jax.Array, fit: jax.Array, ridge: float) -> jax.Array:
  """Kernel-form ridge regression fitted on rows where fit = 1, predicting every row.

  W = Z_f^T (Z_f Z_f^T + lam I)^-1 (Y_f - mean Y_f): an N x N solve, cheaper than D x D when there
  are more features than samples. Rows outside the fit set get zero dual weight.
  """
  zf = z * fit[:, None]
  count = jnp.maximum(jnp.sum(fit), 1.0)
  mean_y = jnp.sum(targets * fit[:, None], axis=0) / count
  yf = (targets - mean_y) * fit[:, None]
  gram = zf @ zf.T
  lam = ridge * jnp.maximum(jnp.trace(gram) / count, 1e-6)
  dual = jnp.linalg.solve(gram + lam * jnp.eye(z.shape[0], dtype=z.dtype), yf)
  return (z @ zf.T) @ dual + mean_y


def cross_fitted_predictions(features: jax.Array, labels: jax.Array, weight: jax.Array,
                             rng: jax.Array, num_classes: int, ridge: float):
  """(predictions [N, K], held_out mask [N]): each real sample predicted from the other half."""
  z = _standardise(features, weight)
  targets = jax.nn.one_hot(labels, num_classes, dtype=z.dtype)
  half = _halves(weight, rng)
  other = (weight > 0).astype(z.dtype) - half
  pred = (half[:, None] * _ridge_predict(z, targets, other, ridge)
          + other[:, None] * _ridge_predict(z, targets, half, ridge))
  return pred, half + other


def feature_attack_loss(attack: FeatureAttack, x_anon: jax.Array, lengths: jax.Array,
                        labels: jax.Array, weight: jax.Array, rng: jax.Array):
  """(loss, metrics) of the cross-fitted statistics attacker on f(x); lower is more private.

  metrics: 'feature_attack_loss' and 'feature_attack_accuracy' (held-out top-1 of the ridge
  predictions: the number a retrained linear attacker would report on this batch).
  """
  feats = features_lib.sequence_features(x_anon, lengths, attack.layout, attack.family)
  pred, held = cross_fitted_predictions(feats, labels, weight, rng, attack.num_classes,
                                        attack.ridge)
  count = jnp.maximum(jnp.sum(held), 1.0)
  if attack.loss == 'margin':
    true = jnp.take_along_axis(pred, labels[:, None], axis=-1)[:, 0]
    per_sample = true - jnp.mean(pred, axis=-1)
  else:
    log_p = jax.nn.log_softmax(attack.scale * pred, axis=-1)
    per_sample = jnp.sum(jnp.exp(log_p) * log_p, axis=-1)   # minus the entropy
  loss = jnp.sum(per_sample * held) / count
  if attack.loss == 'margin':
    # Below chance is no goal: a systematically negative margin is a signal a retrained
    # attacker would read with the sign flipped.
    loss = jnp.maximum(loss, 0.0)
  hits = (jnp.argmax(pred, axis=-1) == labels).astype(pred.dtype)
  return loss, {'feature_attack_loss': loss,
                'feature_attack_accuracy': jnp.sum(hits * held) / count}


# ---------------------------------------------------------------- adversary populations


def reset_mask(step: int, num_members: int, every: int) -> list[bool]:
  """Which members restart from scratch after global step `step` (0-based): member i every
  `every` steps, offset by i * every / num_members so the population's ages are staggered."""
  if every <= 0:
    return [False] * num_members
  return [(step + 1 + (i * every) // num_members) % every == 0 for i in range(num_members)]


def fresh_bank_state_fn(model, example_x: jax.Array, tx: optax.GradientTransformation):
  """A jitted keys [S] -> NetState of S freshly initialised members (params, stats, optimizer)."""
  x = jnp.asarray(example_x[:2])

  def init_one(key):
    params_key, dropout_key = jax.random.split(key)
    variables = model.init({'params': params_key, 'dropout': dropout_key}, x, train=False)
    return NetState(params=variables['params'], batch_stats=variables.get('batch_stats', {}),
                    opt_state=tx.init(variables['params']), step=jnp.zeros((), jnp.int32))

  return jax.jit(jax.vmap(init_one))


def reset_members(state: NetState, fresh: NetState, mask) -> NetState:
  """`state` with the members where mask [S] is true replaced by `fresh`'s."""
  mask = jnp.asarray(mask)
  return jax.tree.map(
      lambda old, new: jnp.where(mask.reshape((-1,) + (1,) * (old.ndim - 1)), new, old),
      state, fresh)
