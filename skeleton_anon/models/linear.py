"""The non-neural attackers' two learners: 1-nearest-neighbour and L2 logistic regression.

Both work on standardised per-sequence features (data/features.py). The standardiser is fitted on
the training side only: statistics of the test side would tell the attacker something about the
samples it is scored on. Both return class scores [n_test, K] (higher = more likely), so the same
metrics (top-k, CMC, balanced accuracy, AUC) score every attacker.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Test rows per similarity block of the nearest-neighbour search (block x train floats).
_NN_CHUNK = 1024
DEFAULT_L2 = 1e-2
# A spread below this fraction of a feature's mean is rounding noise (see Standardizer).
RELATIVE_CONSTANT = 1e-5
MAX_ITER = 100
# Armijo backtracking halvings per line search; the loss is float32, so beyond ~2^-20 a
# 'decrease' is rounding noise.
_MAX_HALVINGS = 20


@dataclasses.dataclass(frozen=True)
class Standardizer:
  """Per-feature mean and spread of the training side; constant features get spread 1.

  "Constant" is relative: a feature whose spread is float32 rounding noise around its mean (the
  bone lengths of retargeted skeletons) would otherwise be divided by ~1e-8 and turn any real
  difference on the test side into values of 1e6 that swamp every other feature.
  """
  mean: np.ndarray
  scale: np.ndarray

  @classmethod
  def fit(cls, features: np.ndarray) -> 'Standardizer':
    features = np.asarray(features, np.float64)
    mean, std = features.mean(axis=0), features.std(axis=0)
    varies = std > RELATIVE_CONSTANT * np.abs(mean) + 1e-8
    return cls(mean.astype(np.float32), np.where(varies, std, 1.0).astype(np.float32))

  def __call__(self, features: np.ndarray) -> np.ndarray:
    return ((np.asarray(features, np.float32) - self.mean) / self.scale).astype(np.float32)


def nearest_neighbour_scores(train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray,
                             num_classes: int, *, metric: str = 'cosine') -> np.ndarray:
  """[n_test, K]: each class's best similarity to the test sample over its training samples.

  The top-1 class is the 1-NN answer; the order of the classes gives the CMC curve. Classes with
  no training sample score -inf. metric: 'cosine' or 'euclidean' (negative distance).
  """
  if metric not in ('cosine', 'euclidean'):
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
  order = np.argsort(train_y, kind='stable')
  ref, labels = np.asarray(train_f, np.float32)[order], np.asarray(train_y)[order]
  classes, starts = np.unique(labels, return_index=True)
  test_f = np.asarray(test_f, np.float32)
  if metric == 'cosine':
    unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    ref, test_f = unit(ref), unit(test_f)
  ref_sq = (ref * ref).sum(axis=1)
  out = np.full((len(test_f), num_classes), -np.inf, np.float32)
  for lo in range(0, len(test_f), _NN_CHUNK):
    block = test_f[lo:lo + _NN_CHUNK]
    sim = block @ ref.T
    if metric == 'euclidean':
      sim = 2 * sim - ref_sq[None] - (block * block).sum(axis=1, keepdims=True)
    out[lo:lo + len(block), classes] = np.maximum.reduceat(sim, starts, axis=1)
  return out


@functools.partial(jax.jit, static_argnames=('num_classes',))
def _loss_and_grad(flat, x, y, sample_weight, l2, *, num_classes: int):
  """Weighted mean cross-entropy + l2/2 ||W||^2 (the bias is free) and its gradient."""
  def loss(flat):
    w = flat[:-num_classes].reshape(x.shape[1], num_classes)
    logits = x @ w + flat[-num_classes:]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(ce * sample_weight) / jnp.sum(sample_weight) + 0.5 * l2 * jnp.sum(w * w)
  return jax.value_and_grad(loss)(flat)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
  # einsum, not `@`: a BLAS call per vector product spins up BLAS threads that fight XLA's for
  # the same cores (25x slower on 2 busy cores); the products here are tiny and many.
  return float(np.einsum('i,i->', a, b))


def minimize_lbfgs(fun, x0: np.ndarray, *, max_iter: int = MAX_ITER, tol: float = 1e-5,
                   ftol: float = 1e-7, history: int = 10) -> np.ndarray:
  """L-BFGS (two-loop recursion, Armijo backtracking) driven from the host.

  `fun(x) -> (value, gradient)` is one jitted call, so only that small function is compiled:
  optax's in-graph L-BFGS with its zoom line search takes ~10 s to compile for every new shape,
  longer than the whole fit. Stops when the gradient's max entry is below `tol` or a step
  lowers the loss by less than `ftol` relative (scipy's L-BFGS-B criteria).
  """
  x = np.asarray(x0, np.float64)
  f, g = (np.asarray(v, np.float64) for v in fun(x))
  pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
  for _ in range(max_iter):
    if np.abs(g).max() < tol:
      break
    q, alphas = g.copy(), []
    for s, y, rho in reversed(pairs):
      a = rho * _dot(s, q)
      q -= a * y
      alphas.append(a)
    s_y = pairs[-1] if pairs else None
    r = q * (_dot(*s_y[:2]) / _dot(s_y[1], s_y[1]) if s_y else
             1.0 / max(np.sqrt(_dot(g, g)), 1.0))
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
      r += s * (a - rho * _dot(y, r))
    direction, slope = -r, -_dot(g, r)
    if slope >= 0:                      # not a descent direction: restart from the gradient
      pairs, direction, slope = [], -g, -_dot(g, g)
    step, accepted = 1.0, False
    for _ in range(_MAX_HALVINGS):
      x_new = x + step * direction
      f_new, g_new = (np.asarray(v, np.float64) for v in fun(x_new))
      if f_new <= f + 1e-4 * step * slope:
        accepted = True
        break
      step *= 0.5
    if not accepted:                    # no decrease left at float32 precision: converged
      break
    s, y = x_new - x, g_new - g
    sy = _dot(s, y)
    if sy > 1e-12:
      pairs = (pairs + [(s, y, 1.0 / sy)])[-history:]
    done = f - f_new <= ftol * max(abs(f), abs(f_new), 1.0)
    x, f, g = x_new, f_new, g_new
    if done:
      break
  return x


def balanced_weights(labels: np.ndarray) -> np.ndarray:
  """Per-sample weight 1/(class count), scaled to mean 1: every class counts the same."""
  counts = np.bincount(labels)
  w = 1.0 / counts[labels]
  return (w / w.mean()).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LogisticRegression:
  """Multinomial logistic regression; class-balanced, so a majority class is no shortcut."""
  weights: np.ndarray
  bias: np.ndarray

  @classmethod
  def fit(cls, features: np.ndarray, labels: np.ndarray, num_classes: int, *,
          l2: float = DEFAULT_L2, max_iter: int = MAX_ITER) -> 'LogisticRegression':
    labels = np.asarray(labels, np.int32)
    features = jnp.asarray(features, jnp.float32)
    args = (features, jnp.asarray(labels), jnp.asarray(balanced_weights(labels)),
            jnp.float32(l2))
    k = int(num_classes)
    fun = lambda flat: _loss_and_grad(jnp.asarray(flat, jnp.float32), *args, num_classes=k)
    flat = minimize_lbfgs(fun, np.zeros(features.shape[1] * k + k), max_iter=max_iter)
    return cls(flat[:-k].reshape(-1, k).astype(np.float32), flat[-k:].astype(np.float32))

  def scores(self, features: np.ndarray) -> np.ndarray:
    """[n, K] logits."""
    return np.asarray(features, np.float32) @ self.weights + self.bias
