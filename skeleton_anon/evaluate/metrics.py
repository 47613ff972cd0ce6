"""Attack metrics with their chance levels and bootstrap intervals: pure numpy.

Every metric takes an optional `weights` [B, n]: how often each test sample is drawn in each of B
bootstrap resamples. Without weights it returns a float; with them, the B resampled values at
once, so `bootstrap_ci` costs a few matrix products instead of B Python calls. Ties in scores are
scored as their expectation under a random tie order (a classifier that outputs constants is
at chance, never at 100%), and AUC counts a tied positive/negative pair as one half, as the
Mann-Whitney statistic does.

Callers drop unknown labels (< 0) before scoring; here labels are 0..K-1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

BOOTSTRAP_SAMPLES = 1000
# Resamples drawn per pass: 200 x 10,000 test samples of int32 counts is 8 MB.
_BOOTSTRAP_CHUNK = 200


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.int64)
  if scores.ndim != 2 or labels.shape != (scores.shape[0],):
    raise ValueError(f'scores {scores.shape} and labels {labels.shape} do not match')
  if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
    raise ValueError(f'labels must be in 0..{scores.shape[1] - 1}')
  return scores, labels


def weighted_mean(values: np.ndarray, weights=None):
  if weights is None:
    return float(np.mean(values)) if values.size else float('nan')
  w = np.asarray(weights, np.float64)
  return (w @ values) / np.maximum(w.sum(axis=1), 1e-12)


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """float [n]: chance that each sample's label is among the k best scores (ties at random)."""
  scores, labels = _check_scores(scores, labels)
  true = scores[np.arange(len(labels)), labels][:, None]
  greater = (scores > true).sum(axis=1)
  ties = (scores == true).sum(axis=1)                          # includes the label itself
  return np.clip((k - greater) / ties, 0.0, 1.0)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1, *, weights=None):
  """Top-k accuracy (tie-aware); a float, or [B] with bootstrap weights."""
  return weighted_mean(topk_hits(scores, labels, k), weights)


def cmc_curve(scores: np.ndarray, labels: np.ndarray, max_rank: int | None = None) -> np.ndarray:
  """float [R]: entry r-1 is the top-r accuracy (the cumulative match characteristic)."""
  scores, labels = _check_scores(scores, labels)
  ranks = min(max_rank or scores.shape[1], scores.shape[1])
  return np.asarray([topk_accuracy(scores, labels, r) for r in range(1, ranks + 1)])


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, *, weights=None):
  """Mean per-class recall of the top-1 prediction, over classes present in `labels`."""
  hits = topk_hits(scores, labels, 1)
  onehot = np.eye(scores.shape[1])[labels]                       # [n, K]
  w = np.ones((1, len(labels))) if weights is None else np.asarray(weights, np.float64)
  per_class = w @ onehot
  recall = np.divide((w * hits) @ onehot, per_class, out=np.zeros_like(per_class),
                     where=per_class > 0)
  value = recall.sum(axis=1) / np.maximum((per_class > 0).sum(axis=1), 1)
  return float(value[0]) if weights is None else value


def _binary(scores: np.ndarray, labels: np.ndarray):
  scores = np.asarray(scores, np.float64).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if scores.shape != labels.shape:
    raise ValueError(f'scores {scores.shape} and labels {labels.shape} do not match')
  if not np.isin(labels, (0, 1)).all():
    raise ValueError('binary labels must be 0 or 1')
  return scores, labels.astype(np.int64)


def _grouped_counts(scores, labels, weights):
  """Positive and negative weight per distinct score, ascending: [B, G] each."""
  order = np.argsort(scores, kind='stable')
  s = scores[order]
  starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
  w = np.ones((1, len(scores))) if weights is None else np.asarray(weights, np.float64)
  w = w[:, order]
  pos = np.add.reduceat(w * labels[order], starts, axis=1)
  neg = np.add.reduceat(w * (1 - labels[order]), starts, axis=1)
  return pos, neg


def roc_auc(scores: np.ndarray, labels: np.ndarray, *, weights=None):
  """Area under the ROC curve, rank-based (ties count 1/2); NaN with one class only."""
  scores, labels = _binary(scores, labels)
  pos, neg = _grouped_counts(scores, labels, weights)
  below = np.cumsum(neg, axis=1) - neg                           # negatives strictly lower
  total = pos.sum(axis=1) * neg.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    value = np.where(total > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / total, np.nan)
  return float(value[0]) if weights is None else value


def equal_error_rate(scores: np.ndarray, labels: np.ndarray, *, weights=None):
  """Where false accept = false reject on the ROC (linearly interpolated between thresholds).

  A sample is accepted (called positive) when its score is at or above the threshold; the
  thresholds run over the distinct scores, from accept-all to accept-none.
  """
  scores, labels = _binary(scores, labels)
  pos, neg = _grouped_counts(scores, labels, weights)
  # Accept-all first: threshold at the lowest score, then each distinct score upward.
  p_tot, n_tot = pos.sum(axis=1, keepdims=True), neg.sum(axis=1, keepdims=True)
  zero = np.zeros_like(p_tot)
  fnr = np.concatenate([zero, np.cumsum(pos, axis=1)], axis=1) / np.maximum(p_tot, 1e-12)
  fpr = 1.0 - np.concatenate([zero, np.cumsum(neg, axis=1)], axis=1) / np.maximum(n_tot, 1e-12)
  gap = fnr - fpr                                                # rises from -1 to +1
  idx = np.clip(np.argmax(gap >= 0, axis=1), 1, gap.shape[1] - 1)
  rows = np.arange(gap.shape[0])
  g0, g1 = gap[rows, idx - 1], gap[rows, idx]
  a = np.where(g1 > g0, -g0 / np.where(g1 > g0, g1 - g0, 1.0), 0.0)
  value = fpr[rows, idx - 1] + a * (fpr[rows, idx] - fpr[rows, idx - 1])
  value = np.where((p_tot[:, 0] > 0) & (n_tot[:, 0] > 0), value, np.nan)
  return float(value[0]) if weights is None else value


def bootstrap_ci(metric: Callable, num_samples: int, *, num: int = BOOTSTRAP_SAMPLES,
                 seed: int = 0, level: float = 0.95, groups=None) -> list[float]:
  """Percentile interval of `metric(weights=[B, n])` over resamples of the n test samples.

  With `groups` (the test samples' people) it is a cluster bootstrap: each resample draws
  people with replacement and every sequence of a drawn person comes along, as many times as
  the person was drawn. A person's sequences are not independent evidence (ten repetitions of
  one gesture by one person say little more about the next person than one), so a question
  about people needs intervals over people; the sequence bootstrap is too narrow for it.

  Args:
    metric: called with `weights`, returns [B] values (e.g. a functools.partial of a metric
      above).
    num_samples: n, the test samples resampled with replacement.
    num: bootstrap resamples B.
    seed: the resampling seed (the same seed gives the same interval).
    level: the interval's coverage.
    groups: None (resample sequences) or [n] person ids (resample people).

  Returns:
    [low, high]; resamples where the metric is undefined (NaN) are left out.
  """
  if num_samples == 0:
    return [float('nan'), float('nan')]
  rng = np.random.default_rng(seed)
  if groups is not None:
    groups = np.asarray(groups)
    if groups.shape != (num_samples,):
      raise ValueError(f'groups {groups.shape} do not match {num_samples} samples')
    _, member = np.unique(groups, return_inverse=True)
    units = int(member.max()) + 1
  else:
    member, units = None, num_samples
  p = np.full(units, 1.0 / units)
  values = []
  for lo in range(0, num, _BOOTSTRAP_CHUNK):
    counts = rng.multinomial(units, p, size=min(_BOOTSTRAP_CHUNK, num - lo))
    if member is not None:
      counts = counts[:, member]          # a drawn person's every sequence, as often as drawn
    values.append(np.asarray(metric(weights=counts.astype(np.float64))))
  values = np.concatenate(values)
  values = values[np.isfinite(values)]
  if values.size == 0:
    return [float('nan'), float('nan')]
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(values, [tail, 100 - tail])
  return [float(low), float(high)]


def topk_chance(train_labels: np.ndarray, test_labels: np.ndarray, k: int = 1) -> float:
  """Accuracy of always answering the k most frequent training classes."""
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  if test_labels.size == 0:
    return float('nan')
  counts = np.bincount(train_labels, minlength=max(train_labels.max(), test_labels.max()) + 1)
  top = np.argsort(-counts, kind='stable')[:k]
  return float(np.isin(test_labels, top).mean())


def chance_level(metric: str, train_labels: np.ndarray, test_labels: np.ndarray) -> float:
  """What a label-blind attacker scores on `metric` (top1/top5/balanced_accuracy/auc/eer)."""
  if metric in ('top1', 'top5'):
    return topk_chance(train_labels, test_labels, 1 if metric == 'top1' else 5)
  if metric == 'balanced_accuracy':
    return 1.0 / len(np.unique(test_labels))
  if metric in ('auc', 'eer'):
    return 0.5
  raise ValueError(f'no chance level for metric {metric!r}')


# A classifier learned its task when, on the original test data, its top-1 reaches at least
# half the way from chance to the best attacker's, and 3 standard errors of a chance-level
# guesser above chance (the only bar when there is no best attacker to compare with).
LEARNED_FRACTION, LEARNED_SE = 0.5, 3.0


def learned_threshold(chance: float, num_test: int, best: float | None = None) -> float:
  """The top-1 a classifier must reach on original test data to count as having learned."""
  chance = float(chance)
  se = np.sqrt(max(chance * (1 - chance), 0.0) / max(int(num_test), 1))
  gap = LEARNED_FRACTION * (float(best) - chance) if best is not None else 0.0
  # On a tiny test split 3 SE can exceed what anything reaches: matching the best attacker
  # (or a perfect score) always counts as learned.
  return float(min(chance + max(gap, LEARNED_SE * se), 1.0 if best is None else float(best)))
