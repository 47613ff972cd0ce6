"""How much a set of classifiers reads from the data: accuracy, agreement, chance.

Pure numpy on logits and labels, so the same functions score original, anonymized, noisy and
retargeted data, whatever produced the logits. Labels below 0 (e.g. gender -1, unknown) are left
out of every score: an unknown label can be neither right nor wrong.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def _known(labels: np.ndarray) -> np.ndarray:
  return np.asarray(labels) >= 0


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float | None:
  """Fraction of samples whose label is among the k highest logits.

  Args:
    logits: [N, K] scores.
    labels: [N] int labels; entries < 0 are ignored.
    k: how many top classes count as a hit.

  Returns:
    The accuracy in [0, 1], or None when there are fewer than k classes (top-5 of a 2-class
    gender task means nothing) or no sample has a known label.
  """
  logits = np.asarray(logits)
  labels = np.asarray(labels)
  if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
    raise ValueError(f'logits {logits.shape} and labels {labels.shape} do not match')
  if logits.shape[1] < k:
    return None
  keep = _known(labels)
  if not keep.any():
    return None
  logits, labels = logits[keep], labels[keep]
  if k == 1:
    return float(np.mean(np.argmax(logits, axis=1) == labels))
  # argpartition is O(K) per row; order inside the top k does not matter for a hit.
  top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
  return float(np.mean((top == labels[:, None]).any(axis=1)))


def top1_top5(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float | None]:
  """(top-1, top-5) accuracy; top-5 is None with fewer than 5 classes."""
  top1 = topk_accuracy(logits, labels, 1)
  return (float('nan') if top1 is None else top1), topk_accuracy(logits, labels, 5)


def agreement_matrix(predictions: np.ndarray) -> np.ndarray:
  """Pairwise agreement ratio between classifiers (the paper's Tables 1 and 2).

  Args:
    predictions: [S, N] predicted class of S classifiers on the same N samples.

  Returns:
    float [S, S]: entry (i, j) is the fraction of samples where classifiers i and j predict the
    same class; the diagonal is 1.
  """
  predictions = np.asarray(predictions)
  if predictions.ndim != 2:
    raise ValueError(f'predictions must be [S, N], got {predictions.shape}')
  same = predictions[:, None, :] == predictions[None, :, :]
  return same.mean(axis=2)


def majority_chance(labels: np.ndarray) -> float:
  """Accuracy of always answering the most frequent known label (the chance level)."""
  labels = np.asarray(labels)
  labels = labels[_known(labels)]
  if labels.size == 0:
    return float('nan')
  counts = np.bincount(labels.astype(np.int64))
  return float(counts.max() / labels.size)


def leakage_table(logits_by_name: Mapping[str, np.ndarray],
                  labels: np.ndarray) -> dict:
  """Scores several classifiers of one task on the same data, plus their agreement.

  Args:
    logits_by_name: classifier name -> [N, K] logits (all on the same samples).
    labels: [N] true labels.

  Returns:
    {'models': [names], 'top1': [...], 'top5': [...], 'agreement': [[...]]}, JSON-ready.
  """
  names = list(logits_by_name)
  scores = [top1_top5(logits_by_name[n], labels) for n in names]
  preds = np.stack([np.argmax(np.asarray(logits_by_name[n]), axis=1) for n in names]) \
      if names else np.zeros((0, len(labels)), np.int64)
  return {
      'models': names,
      'top1': [s[0] for s in scores],
      'top5': [s[1] for s in scores],
      'agreement': agreement_matrix(preds).round(6).tolist() if names else [],
  }


def mean_or_none(values: Sequence[float | None]) -> float | None:
  """Mean of the values that are not None (None when there are none)."""
  kept = [float(v) for v in values if v is not None]
  return float(np.mean(kept)) if kept else None
