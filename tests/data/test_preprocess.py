"""pre_normalize / pad_or_crop against plain per-sample loops written here."""

import numpy as np
import pytest

from skeleton_anon.data import get_layout
from skeleton_anon.data.layouts import custom_layout
from skeleton_anon.data.preprocess import pad_or_crop, pre_normalize, rotation_onto
from skeleton_anon.errors import ConfigError, DataError

NTU = get_layout('ntu25')


# ---- plain reference: one sample, one person, one frame at a time ------------------------------

def _axis_angle_matrix(axis, angle):
  """Rotation by `angle` about unit `axis` (quaternion form, independent of Rodrigues)."""
  a = np.cos(angle / 2)
  b, c, d = np.asarray(axis) * np.sin(angle / 2)
  return np.array([
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - b * b - c * c]])


def _ref_rotation(v, target):
  v = np.asarray(v, np.float64)
  target = np.asarray(target, np.float64)
  if np.linalg.norm(v) < 1e-6:
    return np.eye(3)
  u = v / np.linalg.norm(v)
  angle = np.arccos(np.clip(u @ target, -1, 1))
  axis = np.cross(u, target)
  if np.linalg.norm(axis) < 1e-9:
    if u @ target > 0:
      return np.eye(3)
    helper = np.eye(3)[np.argmin(np.abs(u))]
    axis = np.cross(u, helper)
  return _axis_angle_matrix(axis / np.linalg.norm(axis), angle)


def _ref_rotate(s, layout):
  bottom, top = layout.norm_zaxis
  right, left = layout.norm_xaxis
  rz = _ref_rotation(s[0, 0, top] - s[0, 0, bottom], [0, 0, 1])
  for p in range(s.shape[0]):
    for f in range(s.shape[1]):
      for j in range(s.shape[2]):
        s[p, f, j] = rz @ s[p, f, j]
  rx = _ref_rotation(s[0, 0, right] - s[0, 0, left], [1, 0, 0])
  for p in range(s.shape[0]):
    for f in range(s.shape[1]):
      for j in range(s.shape[2]):
        s[p, f, j] = rx @ s[p, f, j]
  return s


def _frame_empty(frame):
  return not np.any(frame != 0)


def _ref_agcn_sample(sample, length, layout, repeat_to_end):
  s = np.array(sample, np.float64)
  s[:, length:] = 0
  m, t = s.shape[:2]
  end = t if repeat_to_end else length
  if all(_frame_empty(s[p, f]) for p in range(m) for f in range(t)):
    return s, length
  for p in range(m):
    person = s[p]
    valid = [f for f in range(t) if not _frame_empty(person[f])]
    if not valid:
      continue
    if _frame_empty(person[0]):
      frames = person[valid].copy()
      person[:] = 0
      person[:len(frames)] = frames
    last = max(f for f in range(t) if not _frame_empty(person[f]))
    for f in range(last + 1, end):
      person[f] = person[f % (last + 1)]
  for f in range(t):
    centre = s[0, f, layout.norm_center].copy()
    for p in range(m):
      for j in range(s.shape[2]):
        if np.any(s[p, f, j] != 0):
          s[p, f, j] -= centre
  return _ref_rotate(s, layout), (t if repeat_to_end else length)


def _ref_pyskl_sample(sample, length, layout):
  s = np.array(sample, np.float64)
  s[:, length:] = 0
  m, t = s.shape[:2]
  counts = [sum(not _frame_empty(s[p, f]) for f in range(t)) for p in range(m)]
  if max(counts) == 0:
    return s, length
  main = counts.index(max(counts))
  order = list(range(m))
  order[0], order[main] = order[main], order[0]
  s = s[order]
  keep = [f for f in range(t) if not _frame_empty(s[0, f])]
  out = np.zeros_like(s)
  out[:, :len(keep)] = s[:, keep]
  centre = out[0, 0, layout.norm_center].copy()
  for p in range(m):
    for f in range(t):
      for j in range(s.shape[2]):
        if np.any(out[p, f, j] != 0):
          out[p, f, j] -= centre
  return _ref_rotate(out, layout), len(keep)


# ---- data with the awkward cases ---------------------------------------------------------------

def _awkward_batch(seed=0, n=7, m=2, t=12, v=25):
  rng = np.random.default_rng(seed)
  x = rng.normal(0, 0.3, (n, m, t, v, 3)).astype(np.float32)
  x[..., 2] += 3.0
  lengths = rng.integers(4, t + 1, n).astype(np.int32)
  lengths[0] = t
  for i in range(n):
    x[i, :, lengths[i]:] = 0
  x[1, 1] = 0                       # second person missing
  x[2, 0, :3] = 0                   # leading empty frames of person 0
  x[2, 0, 5] = 0                    # ... and a gap in the middle
  lengths[3] = t - 3
  x[3, 1, lengths[3] // 2:] = 0     # second person leaves early
  x[3, :, lengths[3]:] = 7.0        # garbage beyond the length must be ignored
  x[4, 0, 2] = 0                    # a middle gap, first frame valid
  x[4, 1, :] = 0
  x[4, 1, 1:4] = rng.normal(0, 0.3, (3, v, 3))   # person 1 only briefly, after frame 0
  x[5, 0, :, 7] = 0                 # a joint that is never tracked
  x[6, 0] = 0                       # only the second person present
  return x, lengths


@pytest.mark.parametrize('repeat_to_end', [True, False])
def test_agcn_matches_per_sample_reference(repeat_to_end):
  x, lengths = _awkward_batch()
  y, new_lengths = pre_normalize(x, lengths, NTU, 'agcn', repeat_to_end=repeat_to_end,
                                 chunk_size=3)
  assert y.dtype == np.float32 and y.shape == x.shape
  for i in range(x.shape[0]):
    ref, ref_len = _ref_agcn_sample(x[i], lengths[i], NTU, repeat_to_end)
    np.testing.assert_allclose(y[i], ref, atol=1e-5, err_msg=f'sample {i}')
    assert new_lengths[i] == ref_len
    assert not y[i, :, new_lengths[i]:].any()
  assert not y[1, 1].any()          # absent person stays exactly zero


def test_pyskl_matches_per_sample_reference():
  x, lengths = _awkward_batch(seed=1)
  y, new_lengths = pre_normalize(x, lengths, 'ntu25', 'pyskl')
  for i in range(x.shape[0]):
    ref, ref_len = _ref_pyskl_sample(x[i], lengths[i], NTU)
    np.testing.assert_allclose(y[i], ref, atol=1e-5, err_msg=f'sample {i}')
    assert new_lengths[i] == ref_len
    assert not y[i, :, new_lengths[i]:].any()
  # Sample 6 had only person 1: it became person 0.
  assert y[6, 0].any() and not y[6, 1].any()


def test_agcn_result_is_aligned():
  x, lengths = _awkward_batch(seed=2)
  y, _ = pre_normalize(x, lengths, NTU, 'agcn')
  first = y[0, 0, 0]
  spine = first[1] - first[0]
  shoulders = first[8] - first[4]
  np.testing.assert_allclose(first[NTU.norm_center], 0, atol=1e-6)
  # The x step rotates about an axis perpendicular to +x, so the shoulder lands exactly on +x.
  np.testing.assert_allclose(shoulders[1:], 0, atol=1e-5)
  assert shoulders[0] > 0 and np.linalg.norm(spine) > 0


def test_none_only_zeroes_frames_beyond_lengths():
  x, lengths = _awkward_batch(seed=3)
  expected = x.copy()
  expected[3, :, lengths[3]:] = 0   # the batch's garbage beyond sample 3's length
  y, new_lengths = pre_normalize(x, lengths, NTU, 'none')
  np.testing.assert_array_equal(y, expected)
  np.testing.assert_array_equal(new_lengths, lengths)


def test_degenerate_bones_give_no_nan():
  x = np.zeros((3, 1, 4, 25, 3), np.float32)
  x[:, :, :, :, 2] = 2.0            # every joint at the same point: zero-length bones
  x[1, 0, :, 1] = [0, 0, 1.0]       # spine pointing straight down (opposite +z)
  x[2, 0, :, 0] = [0, 0, 3.0]       # spine exactly along +z already
  lengths = np.array([4, 4, 4], np.int32)
  for method in ('agcn', 'pyskl'):
    y, _ = pre_normalize(x, lengths, NTU, method)
    assert np.isfinite(y).all()
  y, _ = pre_normalize(x, lengths, NTU, 'agcn')
  spine = y[1, 0, 0, 1] - y[1, 0, 0, 0]
  np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 0, 1], atol=1e-6)


def test_rotation_onto_cases():
  vectors = np.array([[0, 0, 0], [0, 0, 2], [0, 0, -1], [1, 2, 3], [-1e-12, 0, -1]], float)
  rot = rotation_onto(vectors, (0, 0, 1))
  np.testing.assert_allclose(rot[0], np.eye(3))
  np.testing.assert_allclose(rot[1], np.eye(3))
  for r, v in zip(rot[2:], vectors[2:]):
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_allclose(r @ (v / np.linalg.norm(v)), [0, 0, 1], atol=1e-9)


def test_custom_layout_only_centres():
  layout = custom_layout([[1, 0], [2, 1]], 3)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 1, 5, 3, 3)).astype(np.float32)
  lengths = np.array([5, 5], np.int32)
  y, _ = pre_normalize(x, lengths, layout, 'agcn')
  np.testing.assert_allclose(y, x - x[:, :, :, :1], atol=1e-6)


def test_pad_or_crop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 2, 10, 25, 3)).astype(np.float32)
  lengths = np.array([10, 6, 3], np.int32)
  for i, n in enumerate(lengths):
    x[i, :, n:] = 0
  y, ly = pad_or_crop(x, lengths, 14)
  assert y.shape == (3, 2, 14, 25, 3)
  np.testing.assert_array_equal(ly, lengths)
  np.testing.assert_array_equal(y[:, :, :10], x)
  assert not y[:, :, 10:].any()
  y, ly = pad_or_crop(x, lengths, 5)
  np.testing.assert_array_equal(ly, [5, 5, 3])
  np.testing.assert_array_equal(y, x[:, :, :5])
  y, ly = pad_or_crop(x, lengths, 4, crop='resample')
  np.testing.assert_array_equal(ly, [4, 4, 3])
  np.testing.assert_array_equal(y[0], x[0][:, [0, 3, 6, 9]])
  np.testing.assert_array_equal(y[1], x[1][:, [0, 2, 3, 5]])
  np.testing.assert_array_equal(y[2], x[2, :, :4])


def test_bad_input_errors():
  x = np.zeros((2, 1, 4, 25, 3), np.float32)
  with pytest.raises(DataError, match='layout has 20'):
    pre_normalize(x, np.array([4, 4]), 'kinect_v1_20')
  with pytest.raises(DataError, match=r'lengths = 9 is outside 0\.\.4'):
    pre_normalize(x, np.array([4, 9]), NTU)
  with pytest.raises(DataError, match=r'shape \[N, M, T, V, 3\]'):
    pre_normalize(x[0], np.array([4]), NTU)
  with pytest.raises(ConfigError, match='unknown normalize method'):
    pre_normalize(x, np.array([4, 4]), NTU, 'foo')
  with pytest.raises(ConfigError, match='crop mode'):
    pad_or_crop(x, np.array([4, 4]), 3, crop='middle')
