"""Kill-and-resume equals an uninterrupted run; a NaN stops the run with its checkpoint intact."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import random_arrays, tiny_anonymizer, tiny_bank
from skeleton_anon.train import anonymization, data_iter, loop, parallel, pretrain
from skeleton_anon.train.checkpoint import StageCheckpointer


def _cfg():
  return ml_collections.ConfigDict(dict(
      algorithm='adversarial', epochs=3, batch_size=4, lr=0.01, weight_decay=1e-5,
      milestones=[1], alpha=0.5, beta=1.0, loss_form='paper', k=2, privacy_lr=0.02,
      privacy_weight_decay=1e-4, privacy_milestones=[2]))


def test_interrupted_adversarial_run_resumes_to_identical_params(tmp_path):
  arrays = random_arrays(10)   # 3 batches per epoch, the last one short and padded
  action = tiny_bank(3, [0, 1], arrays['x'])
  privacy = tiny_bank(2, [5], arrays['x'], task='privacy')
  model, variables = tiny_anonymizer(arrays['x'], arrays['lengths'])
  mesh = parallel.make_mesh()

  def train(directory, stop_after=0):
    return anonymization.train_anonymizer(model, variables, action, privacy, arrays, _cfg(),
                                          mesh=mesh, checkpoint_dir=str(directory), seed=7,
                                          stop_after_steps=stop_after)

  full = train(tmp_path / 'full')
  first = train(tmp_path / 'cut', stop_after=4)     # stops mid-epoch, between a min and a max
  assert not first.finished and first.states['anonymizer'].step == 4
  second = train(tmp_path / 'cut')                  # a fresh call, as after a kill
  assert second.finished and second.resumed_from == 4
  for name in ('anonymizer', 'adversary'):
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 full.states[name], second.states[name])
  assert second.history == full.history


def test_checkpoint_restores_onto_another_device_count(tmp_path):
  arrays = random_arrays(8)
  bank = tiny_bank(3, [0, 1], arrays['x'])
  data = {'x': arrays['x'], 'lengths': arrays['lengths'], 'label': arrays['action']}
  cfg = ml_collections.ConfigDict(dict(epochs=1, batch_size=8, lr=0.05, weight_decay=0.0))
  done = pretrain.train_bank_variables(bank.model, bank.variables, data, cfg,
                                       mesh=parallel.make_mesh(), checkpoint_dir=str(tmp_path),
                                       seed=0, name='bank')
  mesh2 = parallel.make_mesh(jax.devices()[:2])
  restored, meta, _ = StageCheckpointer(str(tmp_path)).restore(1, {'bank': done.states['bank']},
                                                               mesh2)
  leaf = jax.tree.leaves(restored['bank'].params)[0]
  assert leaf.sharding.mesh.devices.size == 2
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               restored['bank'].params, done.states['bank'].params)
  assert meta['step'] == 1


def test_nan_loss_stops_with_last_good_checkpoint_intact(tmp_path):
  mesh = parallel.make_mesh()
  states = {'net': parallel.replicate({'w': jnp.zeros(3)}, mesh)}

  def step_fn(states, indices, rng, step):
    loss = jnp.nan if step == 5 else float(step)
    return {'net': {'w': states['net']['w'] + 1.0}}, {'loss': jnp.asarray(loss)}

  iterator = data_iter.EpochIterator(8, 4, seed=0)        # 2 steps per epoch
  with pytest.raises(loop.TrainingDiverged, match='loss is nan at step 5'):
    loop.train_loop(name='net', states=states, step_fn=step_fn, iterator=iterator,
                    num_epochs=5, mesh=mesh, checkpoint_dir=str(tmp_path),
                    rng=jax.random.key(0))
  checkpointer = StageCheckpointer(str(tmp_path))
  assert checkpointer.latest_step() == 4                  # the end of epoch 2, before the NaN
  restored, _, _ = checkpointer.restore(4, states, mesh)
  np.testing.assert_array_equal(np.asarray(restored['net']['w']), 4.0)


def test_iterator_state_round_trip_gives_the_same_batches():
  it = data_iter.EpochIterator(7, 3, seed=2)
  for _ in range(4):
    it.next()
  resumed = data_iter.EpochIterator(7, 3, seed=2)
  resumed.set_state(it.get_state())
  for _ in range(5):
    a, b = it.next(), resumed.next()
    assert a[:2] == b[:2] and np.array_equal(a[2], b[2])
