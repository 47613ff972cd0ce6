"""The fed loop (issue 13): batches prefetched in a thread, metrics fetched every log_every steps.

Prefetching changes only when batches are made, never which: the same batches, in the same order,
and a checkpoint's iterator state is the next batch to train on however far the thread read ahead.
A NaN found by a deferred fetch still stops the run before anything diverged is saved.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.train import data_iter, loop, parallel
from skeleton_anon.train.checkpoint import StageCheckpointer


def test_prefetcher_yields_the_iterators_batches_and_the_state_after_each():
  plain = data_iter.EpochIterator(7, 3, seed=4)
  expected = []
  for _ in range(8):                     # crosses two epoch boundaries (3 batches per epoch)
    epoch, position, indices = plain.next()
    expected.append((epoch, position, indices, plain.get_state()))
  it = data_iter.EpochIterator(7, 3, seed=4)
  seen_steps = []

  def prepare(step, indices):
    seen_steps.append(step)
    return indices * 10
  batches = data_iter.Prefetcher(it, 8, first_step=100, prepare=prepare, depth=2)
  for epoch, position, indices, state in expected[:5]:
    item = batches.next()
    assert (item.epoch, item.position, item.state) == (epoch, position, state)
    np.testing.assert_array_equal(item.batch, indices * 10)
  batches.close()
  # The thread had read ahead; close() rewinds the iterator to after the 5th batch handed out.
  assert it.get_state() == expected[4][3]
  assert seen_steps[:5] == [100, 101, 102, 103, 104]
  assert it.next()[1] == expected[5][1]


def test_prefetcher_raises_the_prepare_error_in_the_consumer():
  def prepare(step, indices):
    if step == 2:
      raise RuntimeError('bad row')
    return indices
  batches = data_iter.Prefetcher(data_iter.EpochIterator(10, 2), 5, prepare=prepare)
  batches.next(), batches.next()
  with pytest.raises(RuntimeError, match='bad row'):
    batches.next()
  batches.close()


def _counting_loop(tmp_path, monkeypatch, *, log_every, nan_at=-1, checkpoint_every=0,
                   num_epochs=1):
  """A 12-step epoch of a toy step; returns (result or exception, device_get call count)."""
  mesh = parallel.make_mesh()
  states = {'net': parallel.replicate({'w': jnp.zeros(3)}, mesh)}
  calls = []
  real_get = jax.device_get
  monkeypatch.setattr(jax, 'device_get', lambda tree: calls.append(1) or real_get(tree))

  def prepare(step, indices):
    return {'x': jnp.asarray(indices, jnp.float32), 'step': step}

  def step_fn(states, batch, rng, step):
    assert batch['step'] == step                   # the batch was prepared for this step
    loss = jnp.nan if step == nan_at else jnp.mean(batch['x'])
    return {'net': {'w': states['net']['w'] + 1.0}}, {'loss': loss}

  iterator = data_iter.EpochIterator(24, 2, seed=0)      # 12 steps per epoch
  try:
    result = loop.train_loop(name='net', states=states, step_fn=step_fn, iterator=iterator,
                             num_epochs=num_epochs, mesh=mesh, checkpoint_dir=str(tmp_path),
                             rng=jax.random.key(0), prepare=prepare, log_every=log_every,
                             checkpoint_every=checkpoint_every)
  except loop.TrainingDiverged as e:
    result = e
  return result, len(calls)


@pytest.mark.parametrize('log_every, fetches', [(1, 12), (5, 3), (0, 1)])
def test_metrics_are_fetched_every_log_every_steps_with_the_same_history(
    tmp_path, monkeypatch, log_every, fetches):
  result, calls = _counting_loop(tmp_path / str(log_every), monkeypatch, log_every=log_every)
  assert calls == fetches                          # steps 5, 10 and the epoch end for 5
  order = data_iter.EpochIterator(24, 2, seed=0).order(0)
  assert result.finished and len(result.history) == 1
  np.testing.assert_allclose(result.history[0]['loss'], np.mean(order), rtol=1e-6)


def test_nan_found_by_a_deferred_fetch_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
  # Checkpoints every 4 steps, metrics fetched only before them: the NaN of step 6 is seen at
  # the fetch before the step-8 save, which therefore never happens.
  err, _ = _counting_loop(tmp_path, monkeypatch, log_every=0, nan_at=6, checkpoint_every=4)
  assert isinstance(err, loop.TrainingDiverged) and 'loss is nan at step 6' in str(err)
  checkpointer = StageCheckpointer(str(tmp_path))
  assert checkpointer.latest_step() == 4
  mesh = parallel.make_mesh()
  restored, meta, _ = checkpointer.restore(4, {'net': {'w': jnp.zeros(3)}}, mesh)
  np.testing.assert_array_equal(np.asarray(restored['net']['w']), 4.0)
  assert meta['iterator'] == {'epoch': 0, 'position': 4}   # the next batch to train on


def test_stopped_run_saves_the_next_batch_to_train_on_not_the_prefetched_one(tmp_path):
  mesh = parallel.make_mesh()
  states = {'net': parallel.replicate({'w': jnp.zeros(3)}, mesh)}
  trained = []

  def step_fn(states, indices, rng, step):
    trained.append(np.asarray(indices))
    return states, {'loss': jnp.float32(0.0)}

  def run(stop_after):
    return loop.train_loop(name='net', states=states, step_fn=step_fn,
                           iterator=data_iter.EpochIterator(10, 3, seed=1), num_epochs=2,
                           mesh=mesh, checkpoint_dir=str(tmp_path), rng=jax.random.key(0),
                           stop_after_steps=stop_after, prefetch=3)

  assert not run(5).finished                       # the thread was up to 3 batches ahead
  _, meta, _ = StageCheckpointer(str(tmp_path)).restore(5, states, mesh)
  assert meta['iterator'] == {'epoch': 1, 'position': 1}   # 4 batches per epoch
  assert run(0).finished
  uninterrupted = data_iter.EpochIterator(10, 3, seed=1)
  for got in trained:
    np.testing.assert_array_equal(got, uninterrupted.next()[2])
  assert len(trained) == 8
