"""The style-prior anonymizer: valid skeletons, deterministic, and identity gone for an attacker
who retrains on its output while the action stays readable; keep_style really keeps style."""

import numpy as np
import pytest

from skeleton_anon.data import features, splits, synthetic, transforms
from skeleton_anon.models import linear, style_prior
from skeleton_anon.train.style_prior import fit_style_prior

SUBJECTS, ACTIONS = 6, 3


@pytest.fixture(scope='module')
def data():
  ds = synthetic.make_synthetic(num_subjects=SUBJECTS, num_actions=ACTIONS, repetitions=3,
                                num_views=2, num_frames=24, seed=0)
  split = splits.make_split(ds, 'random', seed=0, test_fraction=0.3, privacy_target='subject')
  assert len(np.unique(ds.lengths)) > 1           # durations differ: resampling is exercised
  return ds, ds.x, ds.lengths, split == 0, split == 1


@pytest.fixture(scope='module')
def prior(data):
  ds, x, lengths, train, _ = data
  return fit_style_prior(x[train], lengths[train], ds.action[train], ds.subject[train],
                         ds.get_layout(), components=8)


def _top1(train_x, train_len, train_y, test_x, test_len, test_y, layout, nn=False):
  """A retrained attacker on body+motion features: logistic regression or 1-NN."""
  a = features.sequence_features(train_x, train_len, layout)
  b = features.sequence_features(test_x, test_len, layout)
  scaler = linear.Standardizer.fit(a)
  k = int(max(train_y.max(), test_y.max())) + 1
  if nn:
    scores = linear.nearest_neighbour_scores(scaler(a), train_y, scaler(b), k)
  else:
    scores = linear.LogisticRegression.fit(scaler(a), train_y, k).scores(scaler(b))
  return float((scores.argmax(1) == test_y).mean())


def test_output_is_valid_skeletons_at_the_input_duration(data, prior):
  ds, x, lengths, _, test = data
  layout = ds.get_layout()
  y = style_prior.anonymize(prior, x[test], lengths[test], layout)
  assert y.shape == x[test].shape and y.dtype == np.float32
  mask = transforms.valid_mask(x[test], lengths[test])
  assert np.all(y[~mask] == 0) and np.all(np.any(y != 0, axis=(3, 4))[mask])
  bones = transforms.bone_lengths(y, layout.parents)[mask]                  # [K, V]
  np.testing.assert_allclose(bones[:, 1:], np.broadcast_to(prior.bone_lengths[1:], bones[:, 1:].shape),
                             rtol=1e-4, atol=1e-5)


def test_deterministic_per_input_and_not_a_constant_map(data, prior):
  ds, x, lengths, _, test = data
  layout = ds.get_layout()
  y = style_prior.anonymize(prior, x[test], lengths[test], layout)
  again = style_prior.anonymize(prior, x[test][::-1], lengths[test][::-1], layout)[::-1]
  np.testing.assert_array_equal(y, again)          # the order of a batch changes nothing
  delta = (y - x[test]).reshape(len(y), -1)
  assert delta.std(axis=0).mean() > 0.01           # f(x) - x varies across samples
  same_action = ds.action[test] == ds.action[test][0]
  assert np.abs(y[same_action][0] - y[same_action][1]).max() > 0.01


def test_retrained_attacker_loses_identity_and_keeps_action(data, prior):
  ds, x, lengths, train, test = data
  layout = ds.get_layout()
  y = style_prior.anonymize(prior, x, lengths, layout)
  chance = 1.0 / SUBJECTS
  args = lambda z, labels: (z[train], lengths[train], labels[train], z[test], lengths[test],
                            labels[test], layout)
  strongest = lambda z: max(_top1(*args(z, ds.subject)), _top1(*args(z, ds.subject), nn=True))
  before, after = strongest(x), strongest(y)
  assert before > 3 * chance, before
  assert after < 2 * chance, (before, after)
  assert _top1(*args(y, ds.action)) > 0.9


def test_keep_style_keeps_the_input_where_it_is_not_identity(data, prior):
  ds, x, lengths, _, test = data
  layout = ds.get_layout()
  front = style_prior.front_end(x[test], lengths[test], layout, prior.bone_lengths,
                                prior.reference, prior.placement)
  kept = style_prior.anonymize(
      style_prior.StylePrior.from_arrays({**prior.to_arrays(), 'keep_style': np.inf}),
      x[test], lengths[test], layout)
  drawn = style_prior.anonymize(prior, x[test], lengths[test], layout)
  err = lambda z: float(np.sqrt(((z - front) ** 2).mean()))
  # Keeping every direction is the input's projection on the action's subspace: much closer to
  # the (retargeted, placed) input than a full draw.
  assert err(kept) < 0.75 * err(drawn)


def test_round_trip_through_arrays(prior, tmp_path):
  path = tmp_path / 'prior.npz'
  np.savez(path, **prior.to_arrays())
  with np.load(path, allow_pickle=False) as arrays:
    back = style_prior.StylePrior.from_arrays(arrays)
  for name, value in prior.to_arrays().items():
    np.testing.assert_array_equal(np.asarray(getattr(back, name)), value)


def test_direction_encoding_round_trip_and_rigid_alignment():
  ds = synthetic.make_synthetic(num_subjects=2, num_actions=1, repetitions=1, num_views=1,
                                num_frames=10, seed=1)
  layout = ds.get_layout()
  blen = transforms.median_bone_lengths(ds.x, ds.lengths, layout)
  full = ds.lengths == 10                         # resampled 10 -> 10 frames: exact
  assert full.any()
  x = transforms.retarget(ds.x[full], ds.lengths[full], layout, blen)
  enc = transforms.direction_encoding(x, ds.lengths[full], layout, 10)
  back = transforms.direction_decoding(enc, ds.lengths[full], 10, layout, blen)
  np.testing.assert_allclose(back, x, atol=1e-5)
  posture, _ = transforms.first_person_mean_posture(x, ds.lengths[full], layout)
  angle = 0.7
  rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
  turned = posture @ rot.T
  found = transforms.rigid_alignment(turned, posture[0])
  np.testing.assert_allclose(found[0], rot.T, atol=1e-6)


def test_fits_and_anonymizes_2d_keypoints():
  """The prior works on image-plane keypoints as on 3D: 2D bone lengths fixed, C=2 kept."""
  ds = synthetic.make_synthetic(num_subjects=4, num_actions=2, repetitions=2, num_views=1,
                                num_frames=16, seed=1, keypoints='coco17_2d')
  present = np.any(ds.x != 0, axis=-1, keepdims=True)
  x = np.where(present, (ds.x - 960.0) / 540.0, 0.0).astype(np.float32)
  layout = ds.get_layout()
  prior = fit_style_prior(x, ds.lengths, ds.action, ds.subject, layout, components=4)
  out = style_prior.anonymize(prior, x, ds.lengths, layout)
  assert out.shape == x.shape and np.isfinite(out).all()
  assert not np.allclose(out, x)
  bones = np.linalg.norm(transforms.bone_vectors(out, layout.parents), axis=-1)   # [N, M, T, V]
  valid = transforms.valid_mask(out, ds.lengths)                                   # [N, M, T]
  children = np.arange(17) != layout.root
  per_bone = bones[valid][:, children]                                             # [K, 16]
  np.testing.assert_allclose(per_bone.std(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(per_bone.mean(axis=0), prior.bone_lengths[children], rtol=1e-4)


@pytest.mark.parametrize('mode', ['action', 'drawn'])
def test_output_duration_no_longer_follows_the_input(data, mode):
  """output_duration: outputs play for their action's median or a drawn training duration, the
  rest of the array is zero, and the input's own duration no longer reaches the output."""
  ds, x, lengths, train, test = data
  prior = fit_style_prior(x[train], lengths[train], ds.action[train], ds.subject[train],
                          ds.get_layout(), components=8, output_duration=mode)
  layout = ds.get_layout()
  y, played = style_prior.anonymize_with_lengths(prior, x[test], lengths[test], layout)
  np.testing.assert_array_equal(transforms.lengths_from_frames(y), played)
  table = prior.action_durations
  rows = np.searchsorted(prior.actions, ds.action[test])
  assert np.all(played >= 1) and np.all(played <= x.shape[2])
  if mode == 'action':
    # every output of a (correctly predicted) action has that action's median duration
    medians = np.rint(table[rows, 0])
    assert np.mean(played == medians) > 0.8
  else:           # within the training range, and not one duration for everyone
    assert np.all((played >= table[:, 3].min()) & (played <= table[:, 4].max()))
    assert len(np.unique(played)) > 1
  # the same input at another duration: the output's duration does not change with it
  shorter = np.maximum(lengths[test] - 3, 2)
  cut = np.where(np.arange(x.shape[2])[None, None, :, None, None] < shorter[:, None, None, None,
                                                                          None], x[test], 0)
  seeds = [[1, i] for i in range(len(cut))]
  a = style_prior.anonymize_with_lengths(prior, x[test], lengths[test], layout, seeds=seeds)[1]
  b = style_prior.anonymize_with_lengths(prior, cut, shorter, layout, seeds=seeds)[1]
  assert np.mean(a == b) > 0.8       # (where the shorter input is still predicted the same)
  with pytest.raises(Exception, match='output_duration'):
    fit_style_prior(x[train], lengths[train], ds.action[train], ds.subject[train], layout,
                    components=8, output_duration='sometimes')

