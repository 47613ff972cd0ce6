"""Linkage (same person?) pairs and verifier."""

import numpy as np

from skeleton_anon.attacks import linkage


def test_pairs_are_balanced_and_correct():
  subject = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
  i, j, same = linkage.sample_pairs(subject, np.random.default_rng(0))
  assert same.sum() == (subject != 2).sum()                      # one positive per anchor
  assert (same == 0).sum() == same.sum()                          # as many negatives
  assert np.all((subject[i] == subject[j]) == same.astype(bool))
  assert np.all(i[same == 1] != j[same == 1])
  assert len(linkage.sample_pairs(subject, np.random.default_rng(0), max_pairs=4)[0]) == 4


def test_no_pairs_when_nobody_repeats():
  i, _, _ = linkage.sample_pairs(np.arange(5), np.random.default_rng(0))
  assert i.size == 0


def test_verifier_separates_people():
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(12, 8)) * 2
  people = np.repeat(np.arange(12), 6)
  f = (centres[people] + 0.3 * rng.normal(size=(72, 8))).astype(np.float32)
  train, test = people < 8, people >= 8                           # unseen people in test
  scores, same = linkage.linkage_scores(f[train], people[train], f[test], people[test])
  assert len(scores) == len(same) and 0 < same.mean() < 1
  order = np.argsort(scores)
  assert same[order[-5:]].all() and not same[order[:5]].any()
  assert linkage.linkage_scores(f[train], people[train], f[test], np.arange(test.sum())) is None
