"""Per-sequence features: numpy and JAX agree, padding and absent persons change nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data import features
from skeleton_anon.data.layouts import get_layout

LAYOUT = get_layout('ntu25')


def _data(n=4, t=20, persons=1, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, persons, t, 25, 3)).astype(np.float32)
  lengths = rng.integers(5, t + 1, n).astype(np.int32)
  x[np.arange(t)[None, None, :] >= lengths[:, None, None]] = 0
  return x, lengths


@pytest.mark.parametrize('family', features.FAMILIES)
def test_shape_and_numpy_matches_jit(family):
  x, lengths = _data()
  f = features.sequence_features(x, lengths, LAYOUT, family)
  assert f.shape == (4, features.feature_dim(LAYOUT, family)) and f.dtype == np.float32
  assert np.isfinite(f).all()
  fj = jax.jit(lambda a, b: features.sequence_features(a, b, LAYOUT, family))(
      jnp.asarray(x), jnp.asarray(lengths))
  np.testing.assert_allclose(np.asarray(fj), f, rtol=1e-4, atol=1e-4)


def test_gradient_is_finite_with_padding():
  x, lengths = _data()
  grad = jax.grad(lambda a: features.sequence_features(a, jnp.asarray(lengths), LAYOUT).sum())(
      jnp.asarray(x))
  assert np.isfinite(np.asarray(grad)).all()


def test_padding_and_empty_person_slots_change_nothing():
  x, lengths = _data()
  f = features.sequence_features(x, lengths, LAYOUT)
  longer = np.zeros(x.shape[:2] + (35,) + x.shape[3:], np.float32)
  longer[:, :, :x.shape[2]] = x
  np.testing.assert_allclose(features.sequence_features(longer, lengths, LAYOUT), f, atol=1e-5)
  # The same person in slot 1 with slot 0 empty: the first present person is described.
  moved = np.zeros(x.shape[:1] + (2,) + x.shape[2:], np.float32)
  moved[:, 1] = x[:, 0]
  np.testing.assert_allclose(features.sequence_features(moved, lengths, LAYOUT), f, atol=1e-5)


def test_body_ignores_translation_and_motion_ignores_body_size():
  x, lengths = _data()
  mask = (np.arange(x.shape[2])[None, :] < lengths[:, None])[:, None, :, None, None]
  body = features.body_features(x, lengths, LAYOUT)
  shifted = np.where(mask, x + np.float32([1.0, -2.0, 0.5]), 0).astype(np.float32)
  np.testing.assert_allclose(features.body_features(shifted, lengths, LAYOUT), body,
                             rtol=1e-4, atol=1e-4)
  # Twice as big, same movement: body doubles, the height-scaled motion block does not move.
  np.testing.assert_allclose(features.body_features(2 * x, lengths, LAYOUT), 2 * body,
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(features.motion_features(2 * x, lengths, LAYOUT),
                             features.motion_features(x, lengths, LAYOUT), rtol=1e-4, atol=1e-5)


def test_median_bone_length_is_robust_to_one_bad_frame():
  x, lengths = _data(n=1, t=9)
  lengths[:] = 9
  x[0, 0] = x[0, 0, :1]                       # a still pose: every frame the same
  before = features.body_features(x, lengths, LAYOUT)[0, :24]
  x[0, 0, 4] *= 10                            # one wild frame
  after = features.body_features(x, lengths, LAYOUT)[0, :24]
  np.testing.assert_allclose(after, before, rtol=1e-5)


def test_bad_family_or_shape():
  x, lengths = _data()
  with pytest.raises(ValueError, match='unknown feature family'):
    features.sequence_features(x, lengths, LAYOUT, 'face')
  with pytest.raises(ValueError, match=r'\[N, M, T, 25, C\]'):
    features.sequence_features(x[:, :, :, :20], lengths, LAYOUT)
