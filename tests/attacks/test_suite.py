"""Every fast attacker beats chance on data with an identity signal, and is at chance when the
training labels are shuffled (so it never saw the test labels)."""

import numpy as np
import pytest

from conftest import shuffled
from skeleton_anon.attacks import suite
from skeleton_anon.errors import ConfigError

ROW_KEYS = {'task', 'attacker', 'family', 'metric', 'value', 'ci', 'chance'}


@pytest.fixture(scope='module')
def results(synthetic, reid_sides):
  train, test, _ = reid_sides
  run = lambda tr: suite.run_suite(tr, test, privacy_target='subject',
                                   layout=synthetic.get_layout(), num_bootstrap=300,
                                   log=lambda line: None)
  return run(train), run(shuffled(train))


def _headline(rows, task):
  return {r['attacker']: r for r in rows if r['task'] == task and
          r['metric'] == ('auc' if r['attacker'] == 'linkage' else 'top1')}


def test_every_fast_attacker_beats_chance(results):
  real, _ = results
  assert set(real['attackers']) == set(suite.FAST)
  privacy = _headline(real['attacks'], 'privacy')
  assert set(privacy) == set(suite.FAST)
  # Intervals resample the 6 test people (cluster bootstrap), so they are wide: the point
  # estimates beat chance and sit inside their interval.
  for name, row in privacy.items():
    assert row['value'] > row['chance'], (name, row)
    assert row['ci'][0] <= row['value'] <= row['ci'][1], (name, row)
  for name, row in _headline(real['attacks'], 'action').items():
    assert row['value'] > row['chance'], (name, row)
  assert privacy['body_nn']['ci'][0] > privacy['body_nn']['chance']


def test_shuffled_training_labels_give_chance(results):
  _, fake = results
  for row in fake['attacks']:
    # Not above chance beyond its interval: the attacker learnt nothing it could carry over.
    # The interval resamples the 6 test people, so allow 1.5 binomial standard errors of
    # luck on ~25 test sequences.
    slack = 1.5 * np.sqrt(row['chance'] * (1 - row['chance']) / 25)
    assert row['ci'][0] <= row['chance'] + slack, row


def test_rows_strongest_and_cmc(results):
  real, _ = results
  for row in real['attacks']:
    assert set(row) >= ROW_KEYS and row['ci'][0] <= row['value'] <= row['ci'][1]
  best = real['strongest']['privacy']
  top1 = [r['value'] for r in real['attacks'] if r['task'] == 'privacy' and r['metric'] == 'top1']
  assert best['metric'] == 'top1' and best['value'] == max(top1)
  assert real['strongest']['action']['metric'] == 'top1'
  for name, curve in real['cmc'].items():
    assert np.all(np.diff(curve) >= -1e-12) and curve[-1] == pytest.approx(1.0)
  assert {'features', 'total'} <= set(real['timing'])


def test_gender_rows(synthetic):
  from skeleton_anon.attacks import data as attack_data
  train, test, _ = attack_data.attack_split(synthetic, 'gender', test_fraction=0.34)
  out = suite.run_suite(train, test, privacy_target='gender', layout=synthetic.get_layout(),
                        attackers='body_nn', num_bootstrap=100, log=lambda line: None)
  metrics = {r['metric'] for r in out['attacks'] if r['task'] == 'privacy'}
  assert metrics == {'top1', 'balanced_accuracy', 'auc'}
  assert out['strongest']['privacy']['metric'] == 'balanced_accuracy'
  assert out['chance']['privacy_balanced_accuracy'] == 0.5 and not out['cmc']


def test_attacker_names():
  assert suite.resolve_attackers('fast') == suite.FAST
  assert suite.resolve_attackers('all') == suite.ALL
  assert suite.resolve_attackers('sgn, body_nn,sgn') == ('sgn', 'body_nn')
  with pytest.raises(ConfigError, match="unknown attacker.*'nope'"):
    suite.resolve_attackers('body_nn,nope')
