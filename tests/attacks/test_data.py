"""Splits that fit the question, and one-line refusals of those that cannot answer it."""

import dataclasses

import numpy as np
import pytest

from skeleton_anon.attacks import data as attack_data
from skeleton_anon.errors import DataError


def test_default_splits(synthetic):
  train, test, info = attack_data.attack_split(synthetic, 'subject')
  assert info['rule'] == 'leakage_safe' and not info['across_people']     # names give replication
  assert set(np.unique(test.privacy)) <= set(np.unique(train.privacy))
  train, test, info = attack_data.attack_split(synthetic, 'gender', test_fraction=0.34)
  assert info['rule'] == 'by_subject' and info['across_people']
  assert not set(test.subject) & set(train.subject)
  assert len(train) + len(test) == synthetic.num_samples == info['num_train'] + info['num_test']


def test_gender_closed_set_on_request_and_file_split(synthetic):
  _, _, info = attack_data.attack_split(synthetic, 'gender', 'random')
  assert info['rule'] == 'random' and not info['across_people']
  split = (synthetic.replication == 1).astype(np.int8)
  _, _, info = attack_data.attack_split(dataclasses.replace(synthetic, split=split), 'subject')
  assert info['rule'] == 'file'


def test_unknown_labels_are_dropped(synthetic):
  gender = synthetic.gender.copy()
  gender[:6] = -1
  _, _, info = attack_data.attack_split(dataclasses.replace(synthetic, gender=gender), 'gender')
  assert info['dropped_unknown'] == 6


@pytest.mark.parametrize('change,message', [
    (lambda ds: dataclasses.replace(ds, gender=None), "needs a 'gender' array"),
    (lambda ds: dataclasses.replace(ds, gender=np.full_like(ds.gender, -1)),
     'no sample has a known gender'),
    (lambda ds: dataclasses.replace(ds, gender=np.zeros_like(ds.gender)),
     'single gender'),
    (lambda ds: dataclasses.replace(ds, split=np.zeros(ds.num_samples, np.int8)),
     'all 72 samples in train'),
])
def test_refused_gender_splits(synthetic, change, message):
  with pytest.raises(DataError, match=message) as info:
    attack_data.attack_split(change(synthetic), 'gender', path='f.npz')
  assert str(info.value).startswith('f.npz') and '\n' not in str(info.value)


def test_refused_identity_splits(synthetic):
  with pytest.raises(DataError, match='absent from training'):
    attack_data.attack_split(synthetic, 'subject', 'by_subject', path='f.npz')
  one = dataclasses.replace(synthetic, subject=np.zeros_like(synthetic.subject))
  with pytest.raises(DataError, match='single subject'):
    attack_data.attack_split(one, 'subject', 'random', path='f.npz')
  with pytest.raises(DataError, match='both must be non-empty'):
    attack_data.check_split(np.array([0, 1]), np.array([], int), 'subject', path='f.npz')
