"""One device and eight devices (forced host devices) must train the same networks.

Tolerance: rtol 1e-5 — the sharded gradient all-reduce sums in a different order than one device.
"""

import jax
import ml_collections
import numpy as np
import pytest

from helpers import random_arrays, tiny_anonymizer, tiny_bank
from skeleton_anon.train import anonymization, parallel, pretrain

RTOL = 1e-5


def _train_cfg(batch_size):
  return ml_collections.ConfigDict(dict(epochs=2, batch_size=batch_size, lr=0.05,
                                        weight_decay=1e-4, milestones=[1]))


def _anon_cfg(algorithm, batch_size):
  return ml_collections.ConfigDict(dict(
      algorithm=algorithm, epochs=2, batch_size=batch_size, lr=0.01, weight_decay=1e-5,
      milestones=[1], alpha=0.5, beta=1.0, loss_form='paper', k=1, privacy_lr=0.02,
      privacy_weight_decay=0.0, privacy_milestones=[]))


def _losses(history):
  return np.array([[e[k] for k in sorted(e) if k not in ('epoch', 'step')] for e in history])


def test_bank_pretraining_matches_on_1_and_8_devices(tmp_path):
  arrays = random_arrays(16)
  data = {'x': arrays['x'], 'lengths': arrays['lengths'], 'label': arrays['action']}
  bank = tiny_bank(3, [0, 1], arrays['x'])
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(jax.devices()[:n])
    results.append(pretrain.train_bank_variables(
        bank.model, bank.variables, data, _train_cfg(8), mesh=mesh,
        checkpoint_dir=str(tmp_path / f'd{n}'), seed=0, name=f'bank{n}'))
  np.testing.assert_allclose(_losses(results[0].history), _losses(results[1].history), rtol=RTOL)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6),
               results[0].states['bank'].params, results[1].states['bank'].params)


@pytest.mark.parametrize('algorithm,batch_size', [('adversarial', 8), ('ensemble', 6)])
def test_anonymizer_training_matches_on_1_and_8_devices(tmp_path, algorithm, batch_size):
  # batch 6 on 8 devices is padded to 8 with weight-0 rows; the ensemble step has no BatchNorm in
  # train mode, so the padded run must match the unpadded single-device run exactly.
  arrays = random_arrays(12)
  action = tiny_bank(3, [0, 1], arrays['x'])
  privacy = tiny_bank(2, [5], arrays['x'], task='privacy')
  model, variables = tiny_anonymizer(arrays['x'], arrays['lengths'])
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(jax.devices()[:n])
    results.append(anonymization.train_anonymizer(
        model, variables, action, privacy, arrays, _anon_cfg(algorithm, batch_size), mesh=mesh,
        checkpoint_dir=str(tmp_path / f'd{n}'), seed=1))
  np.testing.assert_allclose(_losses(results[0].history), _losses(results[1].history), rtol=RTOL)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6),
               results[0].states['anonymizer'].params, results[1].states['anonymizer'].params)


def test_padded_batch_is_sharded_and_weighted():
  mesh = parallel.make_mesh()
  batch = parallel.gather_batch({'v': np.arange(10)}, np.array([3, 1, 4]), 3, mesh)
  assert batch['v'].shape == (8,)
  assert batch['v'].sharding.spec == parallel.batch_sharding(mesh).spec
  np.testing.assert_array_equal(np.asarray(batch['weight']), [1, 1, 1, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(np.asarray(batch['v'])[:3], [3, 1, 4])
