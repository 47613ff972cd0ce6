import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import random_arrays, tiny_anonymizer, tiny_bank
from skeleton_anon.train import losses, state as state_lib, steps

ALPHA, BETA = 0.3, 2.0


def _batch(arrays):
  return {'x': jnp.asarray(arrays['x']), 'lengths': jnp.asarray(arrays['lengths']),
          'action': jnp.asarray(arrays['action']), 'privacy': jnp.asarray(arrays['privacy']),
          'weight': jnp.ones(len(arrays['x']))}


@pytest.mark.parametrize('bank_form', steps.BANK_FORMS)
def test_ensemble_min_step_equals_a_loop_over_classifiers(bank_form):
  arrays = random_arrays(8)
  batch = _batch(arrays)
  action = tiny_bank(3, [0, 1, 2], arrays['x'])
  privacy = tiny_bank(2, [10, 11], arrays['x'], task='privacy')
  anon_model, anon_vars = tiny_anonymizer(arrays['x'], arrays['lengths'])
  tx = optax.sgd(0.1, momentum=0.9, nesterov=True)

  def loop_loss(params):
    x_anon = anon_model.apply({'params': params}, batch['x'], batch['lengths'])
    total = 0.0
    for i in range(3):
      logits = action.model.apply(action.member(i), x_anon, train=False)
      total += losses.cross_entropy(logits, batch['action'], batch['weight'])
    for j in range(2):
      logits = privacy.model.apply(privacy.member(j), x_anon, train=False)
      total -= ALPHA * losses.entropy(logits, batch['weight'])
    return total + BETA * losses.reconstruction_mse(x_anon, batch['x'], batch['lengths'],
                                                    batch['weight'])

  loss_ref, grads = jax.jit(jax.value_and_grad(loop_loss))(anon_vars['params'])
  updates, _ = tx.update(grads, tx.init(anon_vars['params']), anon_vars['params'])
  expected = optax.apply_updates(anon_vars['params'], updates)

  step = jax.jit(functools.partial(steps.min_step, anon_model, action.model, privacy.model, tx,
                                   steps.LOSS_FORMS['paper'](ALPHA, BETA), bank_form=bank_form))
  new_state, metrics = step(state_lib.init_state(anon_vars, tx), action.variables,
                            privacy.variables, batch)
  np.testing.assert_allclose(metrics['loss'], loss_ref, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               new_state.params, expected)
  assert int(new_state.step) == 1


def test_bank_train_step_is_the_same_as_map_or_vmap():
  arrays = random_arrays(8)
  batch = {'x': jnp.asarray(arrays['x']), 'label': jnp.asarray(arrays['action']),
           'weight': jnp.ones(8)}
  bank = tiny_bank(3, [0, 1, 2], arrays['x'])
  tx = state_lib.sgd(0.1, 4)
  state = state_lib.init_bank_state(bank.variables, tx)
  results = [jax.jit(functools.partial(steps.bank_train_step, bank.model, tx, bank_form=form))(
      state, batch, jax.random.key(3)) for form in steps.BANK_FORMS]
  (vmapped, vm_metrics), (mapped, map_metrics) = results
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               (vmapped.params, vmapped.batch_stats, vm_metrics),
               (mapped.params, mapped.batch_stats, map_metrics))
  # Members differ (own init and dropout key), so the comparison is not of three equal copies.
  assert not np.allclose(vm_metrics['loss'][0], vm_metrics['loss'][1])
  # The tests run on CPU: tiny members stay vmapped, full-size ones are mapped.
  assert steps.resolve_bank_form('auto', bank.variables) == 'vmap'
  big = {'params': {'w': jnp.zeros((3, 1000, 600))}}
  assert steps.resolve_bank_form('auto', bank.variables, big) == 'map'
  with pytest.raises(ValueError, match='bank form'):
    steps.resolve_bank_form('loop')


def test_max_step_updates_adversary_params_and_batch_stats_only():
  arrays = random_arrays(8)
  batch = _batch(arrays)
  privacy = tiny_bank(2, [10], arrays['x'], task='privacy')
  anon_model, anon_vars = tiny_anonymizer(arrays['x'], arrays['lengths'])
  tx = state_lib.sgd(0.1, 4)
  adv = state_lib.init_bank_state(privacy.variables, tx)
  step = jax.jit(functools.partial(steps.max_step, anon_model, privacy.model, tx))
  new, metrics = step(adv, anon_vars, batch, jax.random.key(0))
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), new.params, adv.params)
  assert all(jax.tree.leaves(changed))
  stats_changed = jax.tree.map(lambda a, b: not np.allclose(a, b), new.batch_stats,
                               adv.batch_stats)
  assert all(jax.tree.leaves(stats_changed))
  assert metrics['loss'].shape == (1,)


def test_bank_train_step_members_match_single_training():
  arrays = random_arrays(8)
  batch = {'x': jnp.asarray(arrays['x']), 'label': jnp.asarray(arrays['action']),
           'weight': jnp.ones(8)}
  bank = tiny_bank(3, [0, 1], arrays['x'])
  tx = state_lib.sgd(0.05, 4, weight_decay=1e-4)
  rng = jax.random.key(3)
  new, _ = jax.jit(functools.partial(steps.bank_train_step, bank.model, tx))(
      state_lib.init_bank_state(bank.variables, tx), batch, rng)
  keys = jax.random.split(rng, 2)
  single = state_lib.init_state(bank.member(1), tx)
  one, _ = jax.jit(functools.partial(steps._train_one, bank.model, tx))(
      single, batch['x'], batch['label'], batch['weight'], keys[1])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-7),
               new.params, one.params)


def test_frozen_encoder_does_not_move():
  params = {'encoder': {'w': jnp.ones(3)}, 'decoder': {'w': jnp.ones(3)}}
  tx = state_lib.freeze_subtrees(state_lib.sgd(0.1, 1), params, ['encoder'])
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(new['encoder']['w'], 1.0)
  assert np.all(new['decoder']['w'] < 1.0)


def test_step_schedule_drops_at_milestones():
  schedule = state_lib.step_schedule(0.1, steps_per_epoch=10, milestones=[2, 3])
  np.testing.assert_allclose([schedule(19), schedule(20), schedule(30)], [0.1, 0.01, 0.001],
                             rtol=1e-6)
