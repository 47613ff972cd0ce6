"""Training length by steps, validation splits and best-epoch selection (issue 20)."""

import jax
import ml_collections
import numpy as np
import pytest

from helpers import random_arrays, tiny_bank
from skeleton_anon.data.splits import validation_split
from skeleton_anon.errors import ConfigError
from skeleton_anon.train import parallel, pretrain, state as state_lib


def _section(**kw):
  base = dict(optimizer='sgd', epochs=8, batch_size=8, lr=0.05, weight_decay=0.0,
              milestones=[6], gamma=0.1, momentum=0.9, nesterov=True)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_min_steps_stretches_epochs_and_milestones():
  # 4 batches per epoch: 8 epochs are 32 steps; 600 steps need 150 epochs, milestone 6 -> 112.
  out = state_lib.stretched(_section(min_steps=600), steps_per_epoch=4)
  assert out.epochs == 150 and list(out.milestones) == [112]
  # A large file already has the steps: the section comes back unchanged.
  same = _section(min_steps=600)
  assert state_lib.stretched(same, steps_per_epoch=100) is same
  assert state_lib.stretched(_section(), steps_per_epoch=4).epochs == 8
  with pytest.raises(ConfigError, match='min_steps'):
    state_lib.stretched(_section(min_steps=-1), steps_per_epoch=4)


def test_validation_by_sequence_keeps_every_class_in_training():
  labels = np.repeat(np.arange(5), [2, 3, 10, 10, 1])
  held = validation_split(labels, None, 0.2, by='sequence', seed=0)
  for label in range(5):
    members = labels == label
    assert (~held & members).any()                     # every class still trains
  assert held[labels == 2].sum() == 2 and not held[labels == 4].any()


def test_validation_by_people_holds_out_whole_people_of_both_classes():
  people = np.repeat(np.arange(10), 4)
  gender = (people >= 7).astype(np.int32)              # 7 of one, 3 of the other
  held = validation_split(gender, people, 0.2, by='people', seed=3)
  held_people = set(people[held])
  assert held_people and all(held[people == p].all() for p in held_people)
  assert set(gender[held]) == {0, 1}                   # both classes validated
  assert len(held_people) < 10
  with pytest.raises(ConfigError, match='val_by'):
    validation_split(gender, people, 0.2, by='nobody')


def test_validation_keeps_each_members_best_epoch(tmp_path):
  arrays = random_arrays(n=48, seed=1)
  # A learnable action: the label is written into the first joint's mean.
  arrays['x'][:, 0, :, 0, 0] += 3.0 * arrays['action'][:, None]
  held = validation_split(arrays['action'], None, 0.25, by='sequence', seed=0)
  train = {'x': arrays['x'][~held], 'lengths': arrays['lengths'][~held],
           'label': arrays['action'][~held]}
  val = {'x': arrays['x'][held], 'lengths': arrays['lengths'][held],
         'label': arrays['action'][held]}
  bank = tiny_bank(3, [0, 1], arrays['x'])
  mesh = parallel.make_mesh()
  result = pretrain.train_bank_variables(
      bank.model, bank.variables, train, _section(epochs=5, milestones=[], min_steps=0), mesh=mesh,
      checkpoint_dir=str(tmp_path / 'bank'), seed=0, name='bank', validation=val)
  chosen = pretrain.selection(result)
  assert all(1 <= e <= 5 for e in chosen['epoch'])
  curves = [entry['val_accuracy'] for entry in result.history]
  assert len(curves) == 5                              # one validation score per epoch
  assert result.history[-1]['val_best_accuracy'] == pytest.approx(np.mean(chosen['accuracy']))
  assert np.mean(chosen['accuracy']) >= max(curves) - 1e-6   # each member's best >= any epoch
  # The variables handed back are the selected ones: they score exactly the recorded accuracy.
  logits = pretrain.predict_logits(bank.model, result.states['bank'].variables, val['x'],
                                   val['lengths'], mesh=mesh)
  scored = np.mean(np.argmax(logits, -1) == val['label'][None], axis=1)
  np.testing.assert_allclose(scored, chosen['accuracy'], atol=1e-6)
  # A rerun restores the finished bank, selection included, without training.
  again = pretrain.train_bank_variables(
      bank.model, jax.eval_shape(lambda v: v, bank.variables), train,
      _section(epochs=5, milestones=[], min_steps=0), mesh=mesh,
      checkpoint_dir=str(tmp_path / 'bank'), seed=0, name='bank', validation=val)
  assert pretrain.selection(again) == chosen
