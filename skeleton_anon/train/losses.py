"""Losses and metrics over padded, weighted batches.

Every function takes a per-sample `weight` (1 for real samples, 0 for the padding that makes a batch
divisible by the device count) so padding never changes a loss, a gradient or a metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from skeleton_anon.data.transforms import valid_mask


def _weighted_mean(values: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
  return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
  """Mean softmax cross-entropy over real samples. logits [N, K], labels int [N], weight [N]."""
  per_sample = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return _weighted_mean(per_sample, weight)


def entropy(logits: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
  """Mean entropy (nats) of the softmax prediction over real samples: H(g(f(x))) of Eq. 2."""
  log_p = jax.nn.log_softmax(logits, axis=-1)
  per_sample = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
  return _weighted_mean(per_sample, weight)


def reconstruction_mse(x_anon: jnp.ndarray, x: jnp.ndarray, lengths: jnp.ndarray,
                       weight: jnp.ndarray, score: jnp.ndarray | None = None) -> jnp.ndarray:
  """Mean squared coordinate error over valid frames of present persons of real samples.

  x_anon, x: [N, M, T, V, C]; lengths int [N]; weight [N]. The mean is per coordinate, so it is
  comparable across layouts; the RMSE the report prints is its square root.
  score: optional [N, M, T, V] keypoint confidence in [0, 1]: each joint's error is weighted by
  it, so a joint the pose estimator did not see (score 0) is free to move and is not averaged in.
  """
  mask = valid_mask(x, lengths).astype(x.dtype) * weight[:, None, None]                  # [N, M, T]
  sq = jnp.sum(jnp.square(x_anon - x), axis=4)                          # [N, M, T, V]
  joint_weight = (jnp.ones(sq.shape, x.dtype) if score is None
                  else jnp.asarray(score, x.dtype)) * mask[..., None]   # [N, M, T, V]
  return jnp.sum(sq * joint_weight) / jnp.maximum(jnp.sum(joint_weight) * x.shape[4], 1.0)


def topk_correct(logits: jnp.ndarray, labels: jnp.ndarray, k: int) -> jnp.ndarray:
  """float [N]: 1 where the label is among the k highest logits (k is clipped to the class count)."""
  k = min(k, logits.shape[-1])
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[..., None], axis=-1).astype(jnp.float32)


def accuracy(logits: jnp.ndarray, labels: jnp.ndarray, weight: jnp.ndarray, k: int = 1):
  """Top-k accuracy over real samples."""
  return _weighted_mean(topk_correct(logits, labels, k), weight)
