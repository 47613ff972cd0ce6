"""Linkage attack: are two sequences the same person? (verification, Carr et al. CIKM'23 style)

A published dataset can leak identity even to someone who cannot name anybody: linking two
recordings of one unknown person is enough to build a profile. The attacker here is a logistic
regression on pair features of standardised per-sequence features, |f_a - f_b| (how far apart)
and f_a * f_b (agreeing in which direction), trained on pairs drawn from the training split and
scored on pairs drawn from the test split only. Pairs are balanced (one same-person and one
different-person partner per anchor sequence), so AUC and EER read the same whatever the class
sizes; the bootstrap interval is over test pairs.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.models.linear import LogisticRegression, Standardizer

# 5,000 anchors: the AUC's interval is then ~+-0.01, and the verifier fits in seconds.
MAX_PAIRS = 10_000


def sample_pairs(subject: np.ndarray, rng: np.random.Generator,
                 max_pairs: int = MAX_PAIRS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(i, j, same): balanced same-person / different-person index pairs.

  Every anchor with another sequence of its person gets one same-person partner, and one
  different-person partner drawn at random; at most `max_pairs` pairs in all. Empty arrays when
  no person has two sequences or there is only one person.
  """
  subject = np.asarray(subject)
  order = np.argsort(subject, kind='stable')
  classes, starts, counts = np.unique(subject[order], return_index=True, return_counts=True)
  group = np.searchsorted(classes, subject)                       # [N] index into classes
  rank = np.empty(len(subject), np.int64)
  rank[order] = np.arange(len(subject)) - np.repeat(starts, counts)
  anchors = np.flatnonzero(counts[group] >= 2)
  if anchors.size == 0 or len(classes) < 2:
    empty = np.zeros(0, np.int64)
    return empty, empty, empty
  anchors = rng.permutation(anchors)[:max_pairs // 2]
  # Same person: another position in the anchor's group (skipping the anchor's own).
  offset = rng.integers(0, counts[group[anchors]] - 1)
  offset += offset >= rank[anchors]
  positive = order[starts[group[anchors]] + offset]
  # Different person: redraw the few that hit the anchor's own person.
  negative = rng.integers(0, len(subject), len(anchors))
  for _ in range(100):
    clash = subject[negative] == subject[anchors]
    if not clash.any():
      break
    negative[clash] = rng.integers(0, len(subject), int(clash.sum()))
  keep = subject[negative] != subject[anchors]
  i = np.concatenate([anchors, anchors[keep]])
  j = np.concatenate([positive, negative[keep]])
  same = np.concatenate([np.ones(len(anchors), np.int64), np.zeros(int(keep.sum()), np.int64)])
  return i, j, same


def pair_features(features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
  """[P, 2D]: |f_i - f_j| and f_i * f_j, symmetric in the pair's order."""
  a, b = features[i], features[j]
  return np.concatenate([np.abs(a - b), a * b], axis=1).astype(np.float32)


def linkage_scores(train_f: np.ndarray, train_subject: np.ndarray, test_f: np.ndarray,
                   test_subject: np.ndarray, *, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray] | None:
  """(scores, same) on test pairs, or None when either side has no same-person pair.

  scores: the verifier's same-person logit margin per test pair; same: 1 for same person.
  """
  rng = np.random.default_rng(seed)
  scaler = Standardizer.fit(train_f)
  train_f, test_f = scaler(train_f), scaler(test_f)
  ti, tj, t_same = sample_pairs(train_subject, rng)
  ei, ej, e_same = sample_pairs(test_subject, rng)
  if not (t_same.any() and e_same.any() and (t_same == 0).any() and (e_same == 0).any()):
    return None
  train_pairs = pair_features(train_f, ti, tj)
  pair_scaler = Standardizer.fit(train_pairs)
  model = LogisticRegression.fit(pair_scaler(train_pairs), t_same, 2)
  logits = model.scores(pair_scaler(pair_features(test_f, ei, ej)))
  return logits[:, 1] - logits[:, 0], e_same
