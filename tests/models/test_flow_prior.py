"""The flow prior (issue 21): a trained Flax generator with the style prior's contract.

Shapes and valid skeletons, determinism per input, output independent of who performed for a
fixed action and duration, training that lowers the flow-matching loss, the shared-subspace
baseline, and a save/load round trip through the anonymizer files (Orbax variables).
"""

import ml_collections
import numpy as np
import pytest

from skeleton_anon.data import splits, synthetic
from skeleton_anon.models import flow_prior as flow_lib, style_prior
from skeleton_anon.pipeline.anonymizer import Anonymizer, load_anonymizer, save_anonymizer
from skeleton_anon.pipeline.workdir import StageMarkers
from skeleton_anon.train import parallel
from skeleton_anon.train.flow_prior import fit_flow_prior
from skeleton_anon.train.style_prior import fit_style_prior

KNOBS = dict(components=8, hidden=32, depth=1, embed=8, sample_steps=4)


@pytest.fixture(scope='module')
def data():
  ds = synthetic.make_synthetic(num_subjects=6, num_actions=3, repetitions=3, num_views=2,
                                num_frames=24, seed=0)
  split = splits.make_split(ds, 'random', seed=0, test_fraction=0.3, privacy_target='subject')
  return ds, split == 0, split == 1


@pytest.fixture(scope='module')
def fitted(data, tmp_path_factory):
  ds, train, _ = data
  cfg = ml_collections.ConfigDict(dict(optimizer='adam', lr=3e-3, weight_decay=0.0,
                                       milestones=[], batch_size=16, epochs=1, min_steps=250,
                                       log_every=0))
  return fit_flow_prior(ds.x[train], ds.lengths[train], ds.action[train], ds.subject[train],
                        ds.get_layout(), KNOBS, cfg, mesh=parallel.make_mesh(),
                        checkpoint_dir=str(tmp_path_factory.mktemp('flow')), seed=0)


def _apply(flow, x, lengths, layout, seeds=None):
  return style_prior.anonymize(flow.prior, x, lengths, layout, generator=flow.generate,
                               seeds=seeds)


def test_training_lowers_the_flow_matching_loss(fitted):
  flow, result = fitted
  losses = [entry['loss'] for entry in result.history]
  # The untrained flow (zero output layer) scores E|u1 - u0|^2 / K = 2 on standardised data;
  # even for Gaussian data the best velocity field only reaches ~1.57, so any real drop is
  # learning.
  assert losses[0] > 1.6 and losses[-1] < losses[0] - 0.05
  assert result.history[-1]['step'] >= 250
  # The trained velocity field moves the noise: draws differ from the untrained identity map.
  u0 = np.random.default_rng(0).standard_normal((4, flow.scale.shape[0])).astype(np.float32)
  u1 = np.asarray(flow_lib.integrate(flow.model, flow.variables['params'], u0,
                                     np.zeros(4, np.int32), np.zeros(4, np.float32), 4))
  assert np.abs(u1 - u0).mean() > 0.05


def test_shapes_valid_skeletons_and_determinism(data, fitted):
  ds, _, test = data
  flow, _ = fitted
  x, lengths, layout = ds.x[test], ds.lengths[test], ds.get_layout()
  out = _apply(flow, x, lengths, layout)
  assert out.shape == x.shape and out.dtype == np.float32 and np.isfinite(out).all()
  padded = np.arange(x.shape[2])[None, :] >= lengths[:, None]                 # [N, T]
  assert np.all(out.transpose(0, 2, 1, 3, 4)[padded] == 0)       # padded frames stay zero
  assert not np.allclose(out, x)
  np.testing.assert_array_equal(_apply(flow, x, lengths, layout), out)   # same input, same draw
  # Bones take the training medians, constant over time.
  children = [j for j in range(layout.num_joints) if j != layout.root]
  parents = [layout.parents[j] for j in children]
  first = out[:, 0]                                                          # [N, T, V, C]
  bones = np.linalg.norm(first[:, :, children] - first[:, :, parents], axis=-1)
  for n in range(len(out)):
    np.testing.assert_allclose(bones[n, :lengths[n]], bones[n, :1].repeat(lengths[n], 0),
                               atol=1e-4)


def test_output_is_independent_of_who_performed(data, fitted):
  ds, train, _ = data
  flow, _ = fitted
  layout = ds.get_layout()
  rows = style_prior.predict_action(
      flow.prior, style_prior.front_end(ds.x, ds.lengths, layout, flow.prior.bone_lengths,
                                        flow.prior.reference, flow.prior.placement),
      ds.lengths, layout)
  # Two sequences of one predicted action by two different people, at one duration.
  pairs = [(i, j) for i in range(len(ds.x)) for j in range(len(ds.x))
           if rows[i] == rows[j] and ds.subject[i] != ds.subject[j]]
  i, j = pairs[0]
  x = ds.x[[i, j]].copy()
  lengths = np.full(2, min(ds.lengths[i], ds.lengths[j]), np.int32)
  x[:, :, lengths[0]:] = 0
  same_seed = [[7, 7], [7, 7]]
  out = _apply(flow, x, lengths, layout, seeds=same_seed)
  np.testing.assert_allclose(out[0], out[1], atol=1e-5)
  other = _apply(flow, x, lengths, layout, seeds=[[7, 7], [8, 8]])
  assert not np.allclose(other[0], other[1])           # another seed, another performance


def test_shared_subspace_baseline_borrows_across_actions(data):
  ds, train, _ = data
  args = (ds.x[train], ds.lengths[train], ds.action[train], ds.subject[train], ds.get_layout())
  own = fit_style_prior(*args, components=8)
  pooled = fit_style_prior(*args, components=8, shrink=1.0)
  assert np.allclose(pooled.basis, pooled.basis[:1])             # one basis for every action
  assert not np.allclose(own.basis, own.basis[:1])
  np.testing.assert_allclose(pooled.chol, np.broadcast_to(pooled.chol[:1], pooled.chol.shape))
  half = fit_style_prior(*args, components=8, shrink=0.5)
  assert not np.allclose(half.chol, pooled.chol)
  with pytest.raises(Exception, match='shrink'):
    fit_style_prior(*args, components=8, shrink=1.5)


def test_save_and_load_round_trip(data, fitted, tmp_path):
  ds, _, test = data
  flow, _ = fitted
  layout = ds.get_layout()
  anonymizer = Anonymizer(flow_lib.FLOW_PRIOR, None, {}, 250, layout=layout, prior=flow.prior,
                          flow=flow)
  workdir = str(tmp_path / 'run')
  save_anonymizer(anonymizer, workdir, knobs=KNOBS, num_persons=ds.x.shape[1],
                  num_joints=ds.x.shape[3], num_frames=ds.x.shape[2], layout_name=layout.name)
  StageMarkers(workdir).mark('anonymize', {'step': 250})
  loaded, info = load_anonymizer(workdir)
  assert info['arch'] == 'flow_prior' and loaded.flow is not None
  mesh = parallel.make_mesh()
  x, lengths = ds.x[test], ds.lengths[test]
  np.testing.assert_array_equal(loaded.apply(x, lengths, mesh=mesh),
                                anonymizer.apply(x, lengths, mesh=mesh))


def test_vary_body_draws_population_bodies_independent_of_the_input(data):
  ds, train, test = data
  layout = ds.get_layout()
  prior = fit_style_prior(ds.x[train], ds.lengths[train], ds.action[train], ds.subject[train],
                          layout, components=8, vary_body=1.0)
  x, lengths = ds.x[test][:6], ds.lengths[test][:6]
  out = style_prior.anonymize(prior, x, lengths, layout)
  children = [j for j in range(layout.num_joints) if j != layout.root]
  parents = [layout.parents[j] for j in children]
  bones = np.linalg.norm(out[:, 0, 0, children] - out[:, 0, 0, parents], axis=-1)   # [n, V-1]
  # Bodies differ between outputs (the medians for everyone would make them equal) ...
  assert np.std(bones[:, 0]) > 1e-4
  # ... by an amount of the population's own spread, not more.
  ratio = bones / prior.bone_lengths[children]
  assert np.all(np.abs(np.log(ratio)) < 1.0)
  # The same draw seed gives the same body whoever performed.
  seeds = [[3, 3]] * 2
  pair = style_prior.anonymize(prior, x[:2], np.full(2, lengths[:2].min()), layout, seeds=seeds)
  pair_bones = np.linalg.norm(pair[:, 0, 0, children] - pair[:, 0, 0, parents], axis=-1)
  np.testing.assert_allclose(pair_bones[0], pair_bones[1], atol=1e-5)


def test_texture_adds_the_detail_the_subspace_drops_and_stays_private(data, fitted):
  import dataclasses
  ds, _, test = data
  flow, _ = fitted
  layout = ds.get_layout()
  x, lengths = ds.x[test], ds.lengths[test]
  basis, std = flow.prior.basis[0], flow.prior.residual_std
  assert std is not None and std.shape == (basis.shape[0],) and np.all(std >= 0)
  textured = dataclasses.replace(flow, texture=1.0)
  seeds = [[1, i] for i in range(len(x))]
  rows = np.zeros(len(x), np.int64)
  smooth, rough = flow.generate(rows, lengths, seeds), textured.generate(rows, lengths, seeds)
  detail = rough - smooth
  # The detail lies off the subspace (the flow's own draw is untouched) ...
  np.testing.assert_allclose(detail @ basis, 0.0, atol=1e-4)
  # ... and has about the training residual's spread there.
  off = std ** 2 - ((std[:, None] * basis) ** 2).sum(1)        # expected variance off-subspace
  assert 0.5 < detail.var(axis=0).sum() / off.sum() < 1.5
  # Frame-to-frame motion of the decoded skeletons grows (smoother than real without it).
  plain = _apply(flow, x, lengths, layout, seeds=seeds)
  grainy = _apply(textured, x, lengths, layout, seeds=seeds)
  step = lambda a: np.abs(np.diff(a[:, 0, :lengths.min()], axis=1)).mean()
  assert step(grainy) > 1.05 * step(plain)
  # Still a draw from the seed alone: the same seed gives the same detail whoever performed.
  np.testing.assert_array_equal(textured.generate(rows[:2], lengths[:2], [[5, 5]] * 2)[0],
                                textured.generate(rows[:2], lengths[:2], [[5, 5]] * 2)[1])


def test_coordinate_scale_keeps_proportions_at_whiten_zero():
  from skeleton_anon.train.flow_prior import coordinate_scale
  z = np.random.default_rng(0).standard_normal((500, 3)) * np.array([10.0, 1.0, 0.1])
  std = z.std(axis=0)
  # whiten=1: every direction to unit variance (the flow's former coordinates).
  np.testing.assert_allclose(coordinate_scale(z, 1.0), std, rtol=1e-5)
  # whiten=0: one unit for all, the geometric mean of the stds, so z / scale keeps the
  # directions' 100:10:1 proportions at the same overall (geometric) size.
  zero = coordinate_scale(z, 0.0)
  np.testing.assert_allclose(zero, np.full(3, np.exp(np.log(std).mean())), rtol=1e-5)
  np.testing.assert_allclose((z / zero).std(axis=0) / (z / zero).std(axis=0)[-1],
                             std / std[-1], rtol=1e-5)
  half = coordinate_scale(z, 0.5)
  assert zero[0] < half[0] < std[0] and std[2] < half[2] < zero[2]


@pytest.mark.parametrize('whiten', [-0.5, 1.5])
def test_whiten_out_of_range_is_refused_before_any_fit(data, tmp_path, whiten):
  from skeleton_anon.errors import ConfigError
  ds, train, _ = data
  cfg = ml_collections.ConfigDict(dict(optimizer='adam', lr=1e-3, weight_decay=0.0,
                                       milestones=[], batch_size=16, epochs=1, min_steps=1))
  with pytest.raises(ConfigError, match='whiten must be in'):
    fit_flow_prior(ds.x[train], ds.lengths[train], ds.action[train], ds.subject[train],
                   ds.get_layout(), {**KNOBS, 'whiten': whiten}, cfg,
                   mesh=parallel.make_mesh(), checkpoint_dir=str(tmp_path / 'flow'))
  assert not (tmp_path / 'flow').exists()
