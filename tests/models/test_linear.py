"""1-NN and logistic regression on features; the standardiser sees training data only."""

import numpy as np
import pytest

from skeleton_anon.models import linear
from skeleton_anon.evaluate import metrics


def _clusters(n_per=20, k=4, d=6, spread=0.3, seed=0):
  centres = np.random.default_rng(0).normal(size=(k, d)) * 3
  rng = np.random.default_rng(seed + 1)
  y = np.repeat(np.arange(k), n_per)
  return (centres[y] + spread * rng.normal(size=(len(y), d))).astype(np.float32), y


def test_standardizer_uses_training_statistics_only():
  train = np.array([[0.0, 5.0], [2.0, 5.0]], np.float32)
  scaler = linear.Standardizer.fit(train)
  np.testing.assert_allclose(scaler(train), [[-1, 0], [1, 0]])     # constant column -> 0
  np.testing.assert_allclose(scaler(np.array([[4.0, 7.0]])), [[3, 2]])


def test_nearest_neighbour_scores_by_hand():
  train = np.array([[0, 0], [1, 0], [10, 0]], np.float32)
  y = np.array([0, 0, 1])
  s = linear.nearest_neighbour_scores(train, y, np.array([[2.0, 0.0]]), 3, metric='euclidean')
  np.testing.assert_allclose(s[0, :2], [-1.0, -64.0])                # nearest of each class
  assert s[0, 2] == -np.inf                                          # no training sample
  cos = linear.nearest_neighbour_scores(np.array([[1, 0], [0, 1]], np.float32), np.array([0, 1]),
                                        np.array([[3.0, 1.0]]), 2)
  assert cos[0].argmax() == 0 and cos[0, 0] == pytest.approx(3 / np.sqrt(10))


def test_logistic_regression_learns_and_balances():
  x, y = _clusters()
  xt, yt = _clusters(seed=1)
  model = linear.LogisticRegression.fit(x, y, 4)
  assert metrics.topk_accuracy(model.scores(xt), yt) > 0.95
  np.testing.assert_allclose(linear.balanced_weights(np.array([0, 0, 0, 1])),
                             [2 / 3, 2 / 3, 2 / 3, 2.0])


def test_lbfgs_minimises_a_quadratic():
  target = np.array([1.0, -2.0, 3.0])
  fun = lambda v: (float(((v - target) ** 2).sum()), 2 * (v - target))
  np.testing.assert_allclose(linear.minimize_lbfgs(fun, np.zeros(3)), target, atol=1e-4)


def test_standardizer_treats_rounding_noise_as_constant():
  """A retargeted bone length is constant up to float32 noise: it must not be divided by 1e-8,
  or a real bone difference on the test side swamps every other feature."""
  rng = np.random.default_rng(0)
  bone = np.float32(0.3) + rng.normal(scale=1e-8, size=50).astype(np.float32)
  varying = rng.normal(size=50).astype(np.float32)
  scaler = linear.Standardizer.fit(np.stack([bone, varying], axis=1))
  assert scaler.scale[0] == 1.0 and scaler.scale[1] == pytest.approx(varying.std(), rel=1e-4)
  test = scaler(np.array([[0.32, 0.0]], np.float32))
  assert abs(test[0, 0]) < 1.0
