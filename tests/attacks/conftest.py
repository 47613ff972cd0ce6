"""Small synthetic datasets with an identity signal (body and motion), shared by the tests."""

import dataclasses

import numpy as np
import pytest

from skeleton_anon.attacks import data as attack_data
from skeleton_anon.data.synthetic import make_synthetic


@pytest.fixture(scope='session')
def synthetic():
  """6 people x 3 actions x 2 repetitions x 2 views, 24 frames (72 samples, ntu25)."""
  return make_synthetic(num_subjects=6, num_actions=3, repetitions=2, num_views=2,
                        num_frames=24, seed=3)


@pytest.fixture(scope='session')
def reid_sides(synthetic):
  """(train, test, split info) for closed-set re-identification."""
  return attack_data.attack_split(synthetic, 'subject', 'random', test_fraction=0.35)


def shuffled(side: attack_data.AttackData, seed: int = 0) -> attack_data.AttackData:
  """The same side with its privacy and action labels permuted (the signal cut from x)."""
  rng = np.random.default_rng(seed)
  return dataclasses.replace(side, privacy=rng.permutation(side.privacy),
                             action=rng.permutation(side.action),
                             subject=rng.permutation(side.subject))
