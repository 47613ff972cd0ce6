"""Attack metrics against small cases worked out by hand."""

import functools

import numpy as np
import pytest

from skeleton_anon.evaluate import metrics


def test_topk_and_cmc_by_hand():
  scores = np.array([[0.9, 0.5, 0.1],      # label 0: rank 1
                     [0.9, 0.5, 0.1],      # label 1: rank 2
                     [0.9, 0.5, 0.1],      # label 2: rank 3
                     [0.2, 0.7, 0.4]])     # label 2: rank 2
  labels = np.array([0, 1, 2, 2])
  assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(0.25)
  np.testing.assert_allclose(metrics.cmc_curve(scores, labels), [0.25, 0.75, 1.0])
  np.testing.assert_allclose(metrics.cmc_curve(scores, labels, 2), [0.25, 0.75])


def test_ties_count_as_random_order():
  # Constant scores over 4 classes: any label is top-1 with chance 1/4, top-2 with 1/2.
  scores = np.zeros((3, 4))
  labels = np.array([0, 2, 3])
  assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(0.25)
  assert metrics.topk_accuracy(scores, labels, 2) == pytest.approx(0.5)
  # Label tied with one other class at the top: half a hit at rank 1, a full one at rank 2.
  hits = metrics.topk_hits(np.array([[1.0, 1.0, 0.0]]), np.array([1]), 1)
  assert hits[0] == pytest.approx(0.5)


def test_balanced_accuracy_by_hand():
  # Class 0: 3 samples, 2 right; class 1: 1 sample, right -> (2/3 + 1) / 2.
  scores = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
  labels = np.array([0, 0, 0, 1])
  assert metrics.balanced_accuracy(scores, labels) == pytest.approx((2 / 3 + 1) / 2)
  assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(0.75)


def test_auc_by_hand_with_ties():
  # Positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4), (0.8>0.1), (0.4=0.4 -> 1/2),
  # (0.4>0.1) -> 3.5 / 4.
  scores = np.array([0.8, 0.4, 0.4, 0.1])
  labels = np.array([1, 1, 0, 0])
  assert metrics.roc_auc(scores, labels) == pytest.approx(3.5 / 4)
  assert metrics.roc_auc(-scores, labels) == pytest.approx(0.5 / 4)
  assert np.isnan(metrics.roc_auc(scores, np.ones(4, int)))


def test_eer_by_hand():
  # Negatives 0.1, 0.4, positives 0.35, 0.8: at threshold 0.4 one of two negatives is
  # accepted and one of two positives rejected -> EER 0.5.
  assert metrics.equal_error_rate(np.array([0.1, 0.4, 0.35, 0.8]),
                                  np.array([0, 0, 1, 1])) == pytest.approx(0.5)
  # Perfectly separated: EER 0; inverted: EER 1.
  s, y = np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])
  assert metrics.equal_error_rate(s, y) == pytest.approx(0.0)
  assert metrics.equal_error_rate(-s, y) == pytest.approx(1.0)
  # Negatives 1,2,3,4 and positives 3.5, 5, 6, 7: threshold 3.5 rejects no positive and
  # accepts 1 of 4 negatives (FPR .25, FNR 0); threshold 4 has FPR .25, FNR .25 -> 0.25.
  s = np.array([1, 2, 3, 4, 3.5, 5, 6, 7.0])
  y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
  assert metrics.equal_error_rate(s, y) == pytest.approx(0.25)


def test_weighted_metrics_equal_explicit_resamples():
  rng = np.random.default_rng(0)
  scores, labels = rng.normal(size=(30, 3)), rng.integers(0, 3, 30)
  binary, y2 = rng.normal(size=30), rng.integers(0, 2, 30)
  idx = rng.integers(0, 30, (4, 30))
  weights = np.stack([np.bincount(i, minlength=30) for i in idx]).astype(float)
  for b in range(4):
    i = idx[b]
    assert metrics.topk_accuracy(scores, labels, 1, weights=weights)[b] == pytest.approx(
        metrics.topk_accuracy(scores[i], labels[i], 1))
    assert metrics.balanced_accuracy(scores, labels, weights=weights)[b] == pytest.approx(
        metrics.balanced_accuracy(scores[i], labels[i]))
    assert metrics.roc_auc(binary, y2, weights=weights)[b] == pytest.approx(
        metrics.roc_auc(binary[i], y2[i]))
    assert metrics.equal_error_rate(binary, y2, weights=weights)[b] == pytest.approx(
        metrics.equal_error_rate(binary[i], y2[i]))


def test_bootstrap_interval_is_seeded_and_covers_the_estimate():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 4, 200)
  scores = np.eye(4)[labels] + rng.normal(scale=0.8, size=(200, 4))
  fn = functools.partial(metrics.topk_accuracy, scores, labels, 1)
  low, high = metrics.bootstrap_ci(fn, 200, seed=3)
  assert low < fn() < high and high - low < 0.2
  assert metrics.bootstrap_ci(fn, 200, seed=3) == [low, high]
  assert metrics.bootstrap_ci(fn, 200, seed=4) != [low, high]
  # The percentile interval of a proportion is close to the normal approximation.
  p = fn()
  assert high - low == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / 200), rel=0.2)


def test_chance_levels():
  train, test = np.array([0, 0, 0, 1, 2]), np.array([0, 1, 2, 2])
  assert metrics.chance_level('top1', train, test) == pytest.approx(0.25)   # always class 0
  assert metrics.topk_chance(train, test, 2) == pytest.approx(0.5)
  assert metrics.chance_level('balanced_accuracy', train, test) == pytest.approx(1 / 3)
  assert metrics.chance_level('auc', train, test) == 0.5
  assert metrics.chance_level('eer', train, test) == 0.5
