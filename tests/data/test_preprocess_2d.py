"""The 2D normalisations ('image' = pyskl's PreNormalize2D, 'skeleton') and scores through the
3D ones, against values worked out here."""

import numpy as np
import pytest

from skeleton_anon.data import preprocess
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.errors import ConfigError, DataError

COCO = get_layout('coco17')


def _pixels(n=2, m=2, t=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(100, 900, size=(n, m, t, 17, 2)).astype(np.float32)
  score = rng.uniform(0.2, 1.0, size=(n, m, t, 17)).astype(np.float32)
  return x, score


def test_image_mode_is_pyskl_prenormalize2d():
  x, score = _pixels()
  score[0, 0, 1, 3] = 0.005                     # at or below pyskl's threshold 0.01: dropped
  x[1, 1] = 0                                   # an absent person stays zero
  score[1, 1] = 0
  img_shape = np.array([[1080, 1920], [480, 640]])
  lengths = np.array([5, 4])
  out = preprocess.normalize(x, lengths, COCO, 'image', score=score, img_shape=img_shape)
  for i, (h, w) in enumerate(img_shape):
    expect = np.stack([(x[i, ..., 0] - w / 2) / (w / 2), (x[i, ..., 1] - h / 2) / (h / 2)], -1)
    keep = (score[i] > 0.01) & (np.arange(5) < lengths[i])[None, :, None] & (x[i] != 0).any(-1)
    np.testing.assert_allclose(out.x[i], expect * keep[..., None], atol=1e-6)
    np.testing.assert_allclose(out.offset[i], [w / 2, h / 2])
    np.testing.assert_allclose(out.scale[i], [w / 2, h / 2])
  assert out.x[0, 0, 1, 3].tolist() == [0, 0]
  assert not out.x[1, 1].any() and not out.x[1, :, 4].any()    # absent person, beyond length
  np.testing.assert_array_equal(out.lengths, lengths)
  np.testing.assert_array_equal(out.score[0], score[0])      # scores are kept, not reordered
  assert not out.score[1, :, 4].any()


def test_skeleton_mode_centres_on_the_box_and_keeps_the_aspect_ratio():
  x = np.zeros((2, 1, 3, 17, 2), np.float32)
  x[0, 0, :, :, 0] = np.linspace(100, 300, 17)         # box x 100..300, y 50..150
  x[0, 0, :, :, 1] = np.linspace(50, 150, 17)
  x[1, 0, 0, 0] = [7, 9]                               # one point: zero extent, only centred
  x[1, 0, 0, 1] = [7, 9]
  out = preprocess.normalize(x, np.array([3, 1]), COCO, 'skeleton')
  np.testing.assert_allclose(out.offset, [[200, 100], [7, 9]])
  np.testing.assert_allclose(out.scale, [[100, 100], [1, 1]])
  y = out.x[0, 0]
  np.testing.assert_allclose(y[..., 0].min(), -1) and np.testing.assert_allclose(y[..., 0].max(), 1)
  np.testing.assert_allclose(y[..., 1].max(), 0.5, atol=1e-6)   # height/width ratio survives
  back = preprocess.denormalize_2d(out.x, out.offset, out.scale)
  np.testing.assert_allclose(back[0], x[0], atol=1e-4)


def test_denormalize_inverts_image_mode_and_keeps_absent_joints_zero():
  x, score = _pixels(seed=3)
  x[0, 1, 2] = 0
  img_shape = np.array([[720, 1280], [1080, 1920]])
  out = preprocess.normalize(x, np.array([5, 5]), COCO, 'image', score=score,
                             img_shape=img_shape)
  back = preprocess.denormalize_2d(out.x, out.offset, out.scale)
  np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-3)
  assert not back[0, 1, 2].any()


def test_pre_normalize_takes_2d_keypoints_and_the_image_size():
  x, score = _pixels()
  y, lengths = preprocess.pre_normalize(x, np.array([5, 5]), 'coco17', 'image', score=score,
                                        img_shape=np.array([[1000, 1000]] * 2))
  assert y.shape == x.shape and np.abs(y).max() <= 1


@pytest.mark.parametrize('method,channels,message', [
    ('agcn', 2, "'agcn' rotates 3D skeletons"),
    ('pyskl', 2, "'pyskl' rotates 3D skeletons"),
    ('image', 3, "'image' is for 2D keypoints"),
    ('skeleton', 3, "'skeleton' is for 2D keypoints"),
])
def test_a_method_for_the_other_dimensionality_is_one_line(method, channels, message):
  layout = 'coco17' if channels == 2 else 'ntu25'
  x = np.ones((1, 1, 2, 17 if channels == 2 else 25, channels), np.float32)
  with pytest.raises(ConfigError, match=message) as info:
    preprocess.pre_normalize(x, np.array([2]), layout, method)
  assert '\n' not in str(info.value)


def test_image_mode_needs_the_image_size_and_matching_scores():
  x, score = _pixels()
  with pytest.raises(DataError, match="'image' needs each sample's image size"):
    preprocess.normalize(x, np.array([5, 5]), COCO, 'image')
  with pytest.raises(DataError, match='score has shape'):
    preprocess.normalize(x, np.array([5, 5]), COCO, 'skeleton', score=score[..., :3])


def test_scores_follow_their_keypoints_through_the_pyskl_3d_reordering():
  # Person 1 is present in more frames, so pyskl's PreNormalize3D makes it person 0 and keeps
  # only its frames (1, 2, 3): the scores must move with the keypoints.
  rng = np.random.default_rng(1)
  x = np.zeros((1, 2, 5, 25, 3), np.float32)
  x[0, 0, 0:2] = rng.normal(size=(2, 25, 3))
  x[0, 1, 1:4] = rng.normal(size=(3, 25, 3))
  score = rng.uniform(0.1, 1, size=(1, 2, 5, 25)).astype(np.float32)
  out = preprocess.normalize(x, np.array([5]), 'ntu25', 'pyskl', score=score)
  assert out.lengths[0] == 3
  np.testing.assert_array_equal(out.score[0, 0, :3], score[0, 1, 1:4])
  np.testing.assert_array_equal(out.score[0, 1, :1], score[0, 0, 1:2])  # frame 1 of person 0
  assert not out.score[0, 1, 1:].any() and not out.score[0, :, 3:].any()
  # The keypoints went the same way: the scored joints are the non-zero ones (but the centre
  # joint of the first kept frame, which centring moves onto the origin).
  nonzero = (out.x[0] != 0).any(-1)
  nonzero[0, 0, get_layout('ntu25').norm_center] = True
  np.testing.assert_array_equal(out.score[0] > 0, nonzero)


def test_scores_follow_the_agcn_frame_repetition():
  rng = np.random.default_rng(2)
  x = np.zeros((1, 1, 6, 25, 3), np.float32)
  x[0, 0, 2:4] = rng.normal(size=(2, 25, 3))              # first frame empty: moved to front
  score = rng.uniform(0.1, 1, size=(1, 1, 6, 25)).astype(np.float32)
  out = preprocess.normalize(x, np.array([6]), 'ntu25', 'agcn', score=score)
  expect = score[0, 0, [2, 3, 2, 3, 2, 3]]
  np.testing.assert_array_equal(out.score[0, 0], expect)
