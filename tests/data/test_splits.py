"""Split rules and the identity-split check."""

import itertools

import numpy as np
import pytest

from skeleton_anon.data import SkeletonDataset
from skeleton_anon.data.splits import check_identity_split, held_out_subjects, make_split
from skeleton_anon.errors import ConfigError


def _ntu_like(setups=(1, 2), performers=(1, 3, 45, 48), actions=(1, 2, 3), reps=(1, 2),
              cameras=(1, 2, 3)):
  rows = np.asarray(list(itertools.product(setups, cameras, performers, reps, actions)))
  n = len(rows)
  x = np.zeros((n, 1, 2, 25, 3), np.float32)
  x[:, 0, 0, 0, 0] = 1
  return SkeletonDataset(
      x=x, lengths=np.ones(n, np.int32), action=(rows[:, 4] - 1).astype(np.int32),
      subject=(rows[:, 2] - 1).astype(np.int32), setup=rows[:, 0].astype(np.int32),
      camera=rows[:, 1].astype(np.int32), replication=rows[:, 3].astype(np.int32))


def test_official_ntu_rules():
  ds = _ntu_like()
  xsub = make_split(ds, 'ntu_xsub')
  assert xsub.dtype == np.int8
  np.testing.assert_array_equal(xsub, np.isin(ds.subject + 1, [3, 48]))
  np.testing.assert_array_equal(make_split(ds, 'ntu_xview'), ds.camera == 1)
  np.testing.assert_array_equal(make_split(ds, 'ntu_xset'), ds.setup == 1)


def test_leakage_safe_keeps_each_performance_on_one_side():
  ds = _ntu_like()
  split = make_split(ds, 'leakage_safe')
  performance = {}
  for s, p, r, a, side in zip(ds.setup, ds.subject, ds.replication, ds.action, split):
    performance.setdefault((s, p, r, a), set()).add(int(side))
  assert all(len(sides) == 1 for sides in performance.values())
  for p in np.unique(ds.subject):   # every subject is on both sides
    assert set(split[ds.subject == p]) == {0, 1}
  # The rule on the names' own numbers: train when A % 2 == (P - R) % 2.
  a, p, r = ds.action + 1, ds.subject + 1, ds.replication
  np.testing.assert_array_equal(split == 0, (a % 2) == ((p - r) % 2))
  check_identity_split(ds.subject[split == 0], ds.subject[split == 1])


def test_by_subject_is_deterministic_and_stratified():
  n_subj = 20
  subject = np.repeat(np.arange(n_subj), 3).astype(np.int32)
  gender = (subject % 4 == 0).astype(np.int32)      # 5 of 20 subjects are 1
  x = np.ones((len(subject), 1, 2, 25, 3), np.float32)
  ds = SkeletonDataset(x=x, lengths=np.full(len(subject), 2, np.int32),
                       action=np.zeros(len(subject), np.int32), subject=subject, gender=gender)
  held = held_out_subjects(ds, seed=3, test_fraction=0.2)
  np.testing.assert_array_equal(held, held_out_subjects(ds, seed=3, test_fraction=0.2))
  assert not np.array_equal(held, held_out_subjects(ds, seed=4, test_fraction=0.2))
  assert len(held) == 4 and (gender[np.isin(subject, held)] == 1).sum() == 3  # 1 of 5 subjects
  split = make_split(ds, 'by_subject', seed=3)
  for s in range(n_subj):
    assert len(set(split[subject == s])) == 1
  with pytest.raises(ConfigError, match='absent from training'):
    check_identity_split(subject[split == 0], subject[split == 1])


def test_file_random_and_auto():
  ds = _ntu_like()
  with pytest.raises(ConfigError, match="needs a 'split' array"):
    make_split(ds, 'file')
  np.testing.assert_array_equal(make_split(ds, 'auto'), make_split(ds, 'leakage_safe'))
  plain = SkeletonDataset(x=ds.x, lengths=ds.lengths, action=ds.action, subject=ds.subject)
  rand = make_split(plain, 'auto', seed=1)
  np.testing.assert_array_equal(rand, make_split(plain, 'random', seed=1))
  check_identity_split(plain.subject[rand == 0], plain.subject[rand == 1])
  own = plain.subset(slice(None))
  own.split = (np.arange(plain.num_samples) % 2).astype(np.int8)
  np.testing.assert_array_equal(make_split(own, 'auto'), own.split)


def test_errors():
  ds = _ntu_like()
  plain = SkeletonDataset(x=ds.x, lengths=ds.lengths, action=ds.action, subject=ds.subject)
  with pytest.raises(ConfigError, match="'ntu_xview' needs per-sample camera"):
    make_split(plain, 'ntu_xview')
  with pytest.raises(ConfigError, match='unknown split rule'):
    make_split(ds, 'xsub')
  even_setups = _ntu_like(setups=(2, 4), performers=(1,), actions=(1,), reps=(1,),
                         cameras=(2, 3))
  with pytest.raises(ConfigError, match='all 4 samples in train'):
    make_split(even_setups, 'ntu_xset')
  with pytest.raises(ConfigError, match=r'2 subject\(s\) absent from training \(3, 9\)'):
    check_identity_split([1, 2], [1, 3, 9])


def test_last_per_subject_tests_each_subjects_last_recording():
  subject = np.array([0, 0, 1, 1, 1, 2, 0], np.int32)
  n = len(subject)
  x = np.zeros((n, 1, 2, 25, 3), np.float32)
  x[:, 0, 0, 0, 0] = 1
  ds = SkeletonDataset(x=x, lengths=np.ones(n, np.int32), action=np.zeros(n, np.int32),
                       subject=subject)
  split = make_split(ds, 'last_per_subject')
  # Subject 0's last sample is the final one; subject 2 has one sample and stays in train.
  np.testing.assert_array_equal(split, [0, 0, 0, 0, 1, 0, 1])
  check_identity_split(subject[split == 0], subject[split == 1])
