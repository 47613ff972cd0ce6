"""Role invariants of classifier banks: a seed's classifier is the same whichever bank it trains
in (so the holdout slice of a jointly trained bank is the holdout seed's classifier), and its
dropout stream does not depend on how many members share its bank."""

import jax
import ml_collections
import numpy as np

from helpers import random_arrays, tiny_bank
from skeleton_anon.train import parallel, pretrain


def _train(seeds, directory, arrays):
  bank = tiny_bank(3, seeds, arrays['x'])
  data = {'x': arrays['x'], 'lengths': arrays['lengths'], 'label': arrays['action']}
  cfg = ml_collections.ConfigDict(dict(epochs=2, batch_size=4, lr=0.05, weight_decay=1e-4))
  result = pretrain.train_bank_variables(bank.model, bank.variables, data, cfg,
                                         mesh=parallel.make_mesh(), checkpoint_dir=str(directory),
                                         seed=11, name='bank', member_ids=seeds)
  return result.states['bank']


def test_member_trained_jointly_equals_member_trained_alone(tmp_path):
  arrays = random_arrays(12)
  joint = _train([0, 3], tmp_path / 'joint', arrays)
  alone = _train([3], tmp_path / 'alone', arrays)
  # TinyClassifier has dropout and BatchNorm: both the dropout stream and the statistics must
  # be the member's own for this to hold.
  for part in ('params', 'batch_stats'):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0],
                                                         rtol=1e-5, atol=1e-6),
                 getattr(joint, part), getattr(alone, part))
  # ... and the other member really is another classifier.
  leaf = jax.tree.leaves(joint.params)[0]
  assert not np.allclose(np.asarray(leaf)[0], np.asarray(leaf)[1])
