"""Person-level differential privacy: the accountant, the noise it calibrates, the clip that
bounds one person, and the private style prior's contract and refusals."""

import math

import numpy as np
import pytest

from skeleton_anon.data import synthetic
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import style_prior
from skeleton_anon.train import dp, private_prior

# epsilon at delta = 1e-5 of one Gaussian mechanism with these noise multipliers, from Google's
# dp-accounting 0.6.0 PLDAccountant(value_discretization_interval=1e-4) (its discretisation is
# pessimistic by < 0.5%); '3x1.5' is three compositions of multiplier 1.5.
PLD = {0.65: 7.268511, 1.0: 4.377178, 2.0: 1.993091, 5.0: 0.725522}
PLD_3X_1_5 = 5.174810
# The same library's RdpAccountant for multiplier 1.0 (a looser bound).
RDP_1_0 = 4.728507


@pytest.mark.parametrize('z', sorted(PLD))
def test_exact_gaussian_epsilon_matches_a_pld_accountant(z):
  eps = dp.gaussian_epsilon(z, 1e-5)
  assert PLD[z] * 0.995 <= eps <= PLD[z] * 1.0001


def test_composition_is_one_gaussian_of_the_combined_multiplier():
  mech = dp.Mechanism(1.0, dp.secret_rng(0))
  for name in 'abc':                                  # three equal releases: 1/sqrt(1/3) each
    mech.noisy_sum(name, np.ones((4, 2)), 1.0, 1 / 3)
  assert [r['noise_std'] for r in mech.releases] == pytest.approx([math.sqrt(3)] * 3)
  # three releases of multiplier 1.5 cost what one of 1.5 / sqrt(3) costs
  assert dp.gaussian_epsilon(1.5 / math.sqrt(3), 1e-5) == pytest.approx(PLD_3X_1_5, rel=5e-3)
  with pytest.raises(ValueError, match='budget'):
    mech.noisy_sum('d', np.ones((4, 2)), 1.0, 0.1)   # nothing left


def test_noise_multiplier_inverts_the_curve_and_rdp_is_looser():
  for eps in (1.0, 4.0, 8.0):
    z = dp.noise_multiplier(eps, 1e-5)
    assert dp.gaussian_epsilon(z, 1e-5) == pytest.approx(eps, rel=1e-6)
    assert dp.rdp_epsilon(z, 1e-5) > eps
  assert dp.rdp_epsilon(1.0, 1e-5) == pytest.approx(RDP_1_0, rel=0.02)
  assert dp.noise_multiplier(math.inf, 1e-5) == 0.0


def test_released_noise_has_the_calibrated_scale():
  z = dp.noise_multiplier(2.0, 1e-5)
  mech = dp.Mechanism(z, dp.secret_rng(1))
  rows = np.zeros((3, 20000))
  noisy = mech.noisy_sum('zeros', rows, 0.5, 0.25)
  assert np.std(noisy) == pytest.approx(z * 0.5 / math.sqrt(0.25), rel=0.03)


def test_clipping_bounds_one_persons_influence():
  rng = np.random.default_rng(0)
  people = rng.normal(size=(10, 6))
  extreme = np.full((1, 6), 1e6)
  for clip in (0.1, 1.0, 5.0):
    without = dp.Mechanism(0.0, rng).noisy_sum('s', people, clip, 1.0)
    with_one = dp.Mechanism(0.0, rng).noisy_sum('s', np.concatenate([people, extreme]), clip,
                                                1.0)
    assert np.linalg.norm(with_one - without) <= clip * (1 + 1e-9)
    assert np.linalg.norm(with_one - without) > 0.99 * clip     # the extreme row is clipped


@pytest.fixture(scope='module')
def data():
  ds = synthetic.make_synthetic(num_subjects=8, num_actions=3, repetitions=2, num_views=1,
                                num_frames=16, seed=0)
  return ds, ds.get_layout()


def _fit(ds, layout, idx=slice(None), x=None, **kw):
  kw = {'epsilon': math.inf, 'delta': 1e-5, 'frames': 8, 'frequencies': 2, **kw}
  return private_prior.fit_private_style_prior(
      ds.x[idx] if x is None else x, ds.lengths[idx], ds.action[idx], ds.subject[idx], layout,
      **kw)


def test_fitted_bodies_move_by_at_most_the_clip_when_an_extreme_person_joins(data):
  ds, layout = data
  last = ds.subject.max()
  others = ds.subject != last
  base, before = _fit(ds, layout, others)
  giant = ds.x.copy()
  giant[~others] *= 30.0                             # one person, 30 times everyone's size
  joined, after = _fit(ds, layout, x=giant)
  assert before['size_unit'] == after['size_unit']   # one person does not move the mode
  unit, people = before['size_unit'], len(np.unique(ds.subject[others]))
  mean = np.linalg.norm(base.bone_lengths) / unit
  moved = np.linalg.norm(joined.bone_lengths - base.bone_lengths) / unit
  assert moved <= (private_prior.BONE_CLIP + mean) / (people + 1) + 1e-6
  # unclipped, the giant alone would have moved the mean bones by far more
  assert 29.0 * mean / (people + 1) > 3 * moved


def test_output_depends_on_the_input_only_through_action_and_duration(data):
  ds, layout = data
  prior, guarantee = _fit(ds, layout)
  assert guarantee['unit'] == 'person' and guarantee['private'] is False
  x, lengths = ds.x, ds.lengths
  y = style_prior.anonymize(prior, x, lengths, layout)
  assert y.shape == x.shape and np.isfinite(y).all() and not np.allclose(y, x)
  np.testing.assert_array_equal(style_prior.anonymize(prior, x, lengths, layout), y)
  # the no-noise fit recognises the synthetic actions with its nearest-mean classifier
  front = style_prior.front_end(x, lengths, layout, prior.bone_lengths, prior.reference,
                                prior.placement, prior.align)
  from skeleton_anon.data import transforms
  flat = transforms.direction_encoding(front, lengths, layout, prior.frames).reshape(len(x), -1)
  rows = style_prior.predict_action(prior, front, lengths, layout, flat)
  assert np.mean(prior.actions[rows] == ds.action) > 0.9
  # two people, the same predicted action, the same duration and seed: the same output
  a, b = next((i, j) for i in range(len(x)) for j in range(len(x))
              if ds.subject[i] != ds.subject[j] and rows[i] == rows[j] and lengths[i] ==
              lengths[j])
  pair = style_prior.anonymize(prior, x[[a, b]], lengths[[a, b]], layout,
                               seeds=[[1, 2], [1, 2]])
  np.testing.assert_allclose(pair[0], pair[1], atol=1e-5)


def test_noise_is_secret_unless_a_test_fixes_it_and_the_budget_is_recorded(data):
  ds, layout = data
  first, guarantee = _fit(ds, layout, epsilon=50.0, noise_seed=3)
  again, _ = _fit(ds, layout, epsilon=50.0, noise_seed=3)
  fresh, _ = _fit(ds, layout, epsilon=50.0)
  np.testing.assert_array_equal(first.mean, again.mean)
  assert not np.allclose(first.mean, fresh.mean)
  assert guarantee['private'] and guarantee['epsilon'] == 50.0
  assert guarantee['spent_epsilon'] == pytest.approx(50.0, rel=1e-6)
  assert guarantee['delta'] == 1e-5 and guarantee['unit'] == 'person'
  assert sum(r['weight'] for r in guarantee['releases']) == pytest.approx(1.0)
  assert {r['name'] for r in guarantee['releases']} >= {'size histogram', 'people',
                                                         'bone lengths', 'action deviations'}
  # and round-trips through the saved arrays
  back = style_prior.StylePrior.from_arrays(first.to_arrays())
  assert back.align is False
  np.testing.assert_array_equal(style_prior.anonymize(back, ds.x, ds.lengths, layout),
                                style_prior.anonymize(first, ds.x, ds.lengths, layout))


@pytest.mark.parametrize('epsilon, delta, match', [
    (-1.0, 1e-5, 'epsilon'), (0.0, 1e-5, 'epsilon'), (math.nan, 1e-5, 'epsilon'),
    (8.0, 0.0, 'delta'), (8.0, 1.5, 'delta')])
def test_invalid_budgets_are_refused(data, epsilon, delta, match):
  ds, layout = data
  with pytest.raises(ConfigError, match=match):
    _fit(ds, layout, epsilon=epsilon, delta=delta)


def test_too_few_people_for_the_epsilon_is_refused_not_garbage(data):
  ds, layout = data
  with pytest.raises(ConfigError, match='too few people'):
    _fit(ds, layout, epsilon=0.05, noise_seed=0)
