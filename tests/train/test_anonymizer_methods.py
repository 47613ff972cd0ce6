"""Training aimed at retrained attackers: Algorithm 1's schedules, restarting adversary
populations, and the cross-fitted statistics attacker."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from helpers import random_arrays, tiny_anonymizer, tiny_bank
from skeleton_anon.data.layouts import custom_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.train import adversaries, anonymization, parallel, state as state_lib, steps

LAYOUT = custom_layout(np.asarray([[1, 0], [2, 1], [3, 1], [4, 0]]), 5)


def _cfg(**overrides):
  base = dict(algorithm='adversarial', epochs=3, batch_size=4, lr=0.01, weight_decay=0.0,
              milestones=[], alpha=0.5, beta=1.0, loss_form='paper', k=2, privacy_lr=0.02,
              privacy_weight_decay=0.0, privacy_milestones=[])
  return ml_collections.ConfigDict({**base, **overrides})


def _own(j):
  return np.asarray([100 + j])


@pytest.mark.parametrize('schedule', anonymization.SCHEDULES)
def test_plan_step_counts_min_and_max_steps_and_their_batches(schedule):
  k, total = 3, 12
  plans = [anonymization.plan_step(schedule, s, k, np.asarray([s]), _own) for s in range(total)]
  mins = [int(p[0][0]) for p in plans if p[0] is not None]
  maxes = [int(p[1][0]) for p in plans if p[1] is not None]
  if schedule == 'reference':
    # Each batch is used once: k min steps, then one max step, counted over global steps.
    assert mins == [0, 1, 2, 4, 5, 6, 8, 9, 10] and maxes == [3, 7, 11]
  else:
    assert mins == list(range(total))                   # a min step every step
    assert [s for s, p in enumerate(plans) if p[1] is not None] == [2, 5, 8, 11]
    # Algorithm 1: the max step draws its own minibatch j = step // k; 'shared' reuses the min's.
    assert maxes == ([100, 101, 102, 103] if schedule == 'paper' else [2, 5, 8, 11])


def test_own_batches_cover_the_data_in_another_order_and_are_a_function_of_j():
  own = anonymization.OwnBatches(10, 4, seed=3)
  epoch = np.concatenate([own(j) for j in range(3)])
  assert sorted(epoch.tolist()) == list(range(10))
  np.testing.assert_array_equal(own(4), anonymization.OwnBatches(10, 4, seed=3)(4))
  assert not np.array_equal(own(0), anonymization.OwnBatches(10, 4, seed=4)(0))


def _train(tmp_path, cfg, arrays=None, privacy_seeds=(5,), layout=None, with_action=True):
  arrays = arrays or random_arrays(8)
  action = tiny_bank(3, [0, 1], arrays['x']) if with_action else None
  privacy = tiny_bank(2, list(privacy_seeds), arrays['x'], task='privacy')
  model, variables = tiny_anonymizer(arrays['x'], arrays['lengths'])
  return anonymization.train_anonymizer(model, variables, action, privacy, arrays, cfg,
                                        mesh=parallel.make_mesh(),
                                        checkpoint_dir=str(tmp_path), seed=0, layout=layout)


@pytest.mark.parametrize('schedule,num_min,num_max', [('paper', 6, 3), ('shared', 6, 3),
                                                      ('reference', 4, 2)])
def test_training_runs_the_planned_number_of_min_and_max_steps(tmp_path, schedule, num_min,
                                                               num_max):
  result = _train(tmp_path, _cfg(adversarial_schedule=schedule))   # 2 batches x 3 epochs
  assert int(result.states['anonymizer'].step) == num_min
  np.testing.assert_array_equal(np.asarray(result.states['adversary'].step), [num_max])
  assert 'adversary_accuracy' in result.history[-1]


def test_privacy_only_run_trains_without_an_action_bank(tmp_path):
  result = _train(tmp_path, _cfg(k=1, epochs=1), with_action=False)
  assert int(result.states['anonymizer'].step) == 2
  assert 'action_ce' not in result.history[-1] and 'privacy_entropy' in result.history[-1]


def test_reset_mask_staggers_the_population():
  resets = np.asarray([adversaries.reset_mask(s, 2, 4) for s in range(8)])
  assert np.flatnonzero(resets[:, 0]).tolist() == [3, 7]
  assert np.flatnonzero(resets[:, 1]).tolist() == [1, 5]
  assert not any(adversaries.reset_mask(3, 2, 0))


def test_population_starts_from_scratch_and_members_restart(tmp_path):
  arrays = random_arrays(8)
  # k=1, 'paper': one max step per step, 6 steps; member 0 restarts after steps 2 and 5
  # (reset_every 3), member 1 (offset 1) after step 1 and 4.
  result = _train(tmp_path, _cfg(k=1, num_adversaries=2, adversary_reset_every=3), arrays)
  adversary = result.states['adversary']
  np.testing.assert_array_equal(np.asarray(adversary.step), [0, 1])
  # Member 0 was just restarted: exactly a fresh init from the population's keys after step 5.
  tx = state_lib.sgd(0.02, 1)
  fresh = adversaries.fresh_bank_state_fn(tiny_bank(2, [5], arrays['x']).model, arrays['x'],
                                          tx)(anonymization._member_keys(104729, 5, 2))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[0]),
               adversary.params, fresh.params)
  # The population is not the pretrained bank, and member 1 has trained since its restart.
  kernel = lambda params, i: np.asarray(params['Dense_0']['kernel'][i])
  pretrained = tiny_bank(2, [5], arrays['x'], task='privacy').variables['params']
  assert not np.allclose(kernel(adversary.params, 0), kernel(pretrained, 0))
  assert not np.allclose(kernel(adversary.params, 1), kernel(fresh.params, 1))


def test_reset_members_replaces_only_the_masked_members():
  old = state_lib.NetState(params={'w': jnp.zeros((3, 2))}, batch_stats={},
                           opt_state=(jnp.ones((3,)),), step=jnp.asarray([5, 6, 7]))
  new = jax.tree.map(lambda a: a + 10, old)
  out = adversaries.reset_members(old, new, [False, True, False])
  np.testing.assert_array_equal(out.step, [5, 16, 7])
  np.testing.assert_array_equal(out.params['w'][:, 0], [0, 10, 0])
  np.testing.assert_array_equal(out.opt_state[0], [1, 11, 1])


def _labelled_features(n, num_classes, signal, seed=0):
  rng = np.random.RandomState(seed)
  labels = np.arange(n) % num_classes
  feats = rng.normal(size=(n, 12)) + signal * np.eye(num_classes, 12)[labels] * 6
  return jnp.asarray(feats, jnp.float32), jnp.asarray(labels, jnp.int32)


def test_cross_fitted_ridge_reads_a_signal_and_never_sees_the_label_it_predicts():
  predict = jax.jit(functools.partial(adversaries.cross_fitted_predictions, num_classes=4,
                                      ridge=0.1))
  weight = jnp.ones(64).at[-2:].set(0.0)                 # two padding rows
  key = jax.random.key(0)
  for signal, low, high in [(1.0, 0.9, 1.01), (0.0, 0.0, 0.45)]:
    feats, labels = _labelled_features(64, 4, signal)
    pred, held = predict(feats, labels, weight, key)
    np.testing.assert_array_equal(held, weight)          # every real sample held out once
    accuracy = float(np.mean((np.argmax(pred, -1) == labels)[:62]))
    assert low <= accuracy <= high, (signal, accuracy)
  # Relabelling sample 0 changes the fit of the other half only, never its own prediction.
  pred_other, _ = predict(feats, labels.at[0].set((labels[0] + 1) % 4), weight, key)
  np.testing.assert_allclose(pred_other[0], pred[0], atol=1e-5)


def test_feature_attack_gradient_lowers_what_a_refitted_attacker_reads(tmp_path):
  """Identity in body proportions (class c moves joint c + 1): min steps on the attacker's loss
  alone must hide it from an attacker refitted on every batch."""
  n = 32
  arrays = random_arrays(n, num_privacy=4)
  arrays['privacy'] = (np.arange(n) % 4).astype(np.int32)
  x = 0.05 * arrays['x'] + np.random.RandomState(0).normal(size=(1, 1, 1, 5, 3))
  x[np.arange(n), :, :, arrays['privacy'] + 1] += np.float32(0.8)
  x[:, 1] = 0.0                                          # one person per sample
  x *= (np.arange(x.shape[2])[None] < arrays['lengths'][:, None])[:, None, :, None, None]
  arrays['x'] = x.astype(np.float32)
  attack = adversaries.FeatureAttack(layout=LAYOUT, num_classes=4, weight=1.0, family='body')
  model, variables = tiny_anonymizer(arrays['x'], arrays['lengths'])
  action = tiny_bank(3, [0], arrays['x'])
  privacy = tiny_bank(4, [5], arrays['x'], task='privacy')
  tx = optax.adam(3e-2)
  step = jax.jit(functools.partial(steps.min_step, model, action.model, privacy.model, tx,
                                   (0.0, 0.0, 0.0), feature_attack=attack))
  batch = {k: jnp.asarray(v) for k, v in arrays.items()}
  batch['weight'] = jnp.ones(n)
  state = state_lib.init_state(variables, tx)
  accuracies = []
  for i in range(80):
    state, metrics = step(state, action.variables, privacy.variables, batch, jax.random.key(i))
    accuracies.append(float(metrics['feature_attack_accuracy']))
  assert np.mean(accuracies[1:7]) > 0.9                  # the attacker reads the bone ...
  assert np.mean(accuracies[-10:]) < 0.55                # ... until f hides it (chance 0.25)


def test_misconfigurations_are_one_line_errors(tmp_path):
  with pytest.raises(ConfigError, match='layout'):
    _train(tmp_path / 'a', _cfg(feature_attack_weight=1.0))
  with pytest.raises(ConfigError, match="algorithm='adversarial'"):
    _train(tmp_path / 'b', _cfg(algorithm='ensemble', num_adversaries=2))
  with pytest.raises(ConfigError, match='adversarial_schedule'):
    _train(tmp_path / 'c', _cfg(adversarial_schedule='alternate'))
  with pytest.raises(ConfigError, match='feature_attack_family'):
    _train(tmp_path / 'd', _cfg(feature_attack_weight=1.0, feature_attack_family='pose'),
           layout=LAYOUT)
