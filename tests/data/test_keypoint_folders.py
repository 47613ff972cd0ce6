"""Folders of OpenPose per-frame JSON and MediaPipe per-sequence files, and their bad inputs."""

import json
import os

import numpy as np
import pytest

from skeleton_anon.data import load_npz, mediapipe, openpose
from skeleton_anon.data.formats import NamePattern
from skeleton_anon.errors import ConfigError, DataError
from skeleton_anon.prepare import PrepareOptions, prepare

PATTERN = NamePattern(r'P(?P<subject>\d+)_A(?P<action>\d+)')


def _person(rng, centre, joints=25):
  xy = rng.normal(size=(joints, 2)) * 20 + centre
  c = rng.uniform(0.2, 1.0, size=(joints, 1))
  return np.concatenate([xy, c], 1)


def _write_frame(path, people, ids=None):
  content = {'version': 1.3, 'people': [
      {'person_id': [-1 if ids is None else ids[k]],
       'pose_keypoints_2d': p.reshape(-1).tolist(), 'face_keypoints_2d': []}
      for k, p in enumerate(people)]}
  with open(path, 'w') as f:
    json.dump(content, f)


def _openpose_video(folder, stem, frames, *, swap_every=0, seed=0):
  """One video's frame files; two people at x 200 and 600, listed in swapped order every
  `swap_every` frames (OpenPose without --tracking does not keep the order)."""
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  truth = []
  for t in range(frames):
    a, b = _person(rng, (200 + 5 * t, 300)), _person(rng, (600, 300 + 30 * t))
    a[3] = 0                                           # an undetected joint: (0, 0, 0)
    truth.append((a, b))
    people = [b, a] if swap_every and t % swap_every == 1 else [a, b]
    _write_frame(os.path.join(folder, f'{stem}_{t:012d}_keypoints.json'), people)
  return truth


def test_flat_openpose_folder_one_stem_per_sequence(tmp_path):
  truth = _openpose_video(tmp_path, 'P003_A002_cam1', 6, swap_every=2)
  _openpose_video(tmp_path, 'P001_A001_cam1', 4, seed=1)
  ds = openpose.read_openpose(tmp_path, name_pattern=PATTERN, max_frames=8,
                                      progress=False)
  assert ds.layout == 'openpose25' and ds.x.shape == (2, 2, 8, 25, 2)
  assert ds.names.tolist() == ['P001_A001_cam1', 'P003_A002_cam1']
  np.testing.assert_array_equal(ds.subject, [0, 2])
  np.testing.assert_array_equal(ds.action, [0, 1])
  np.testing.assert_array_equal(ds.lengths, [4, 6])
  # The people are linked across the swapped frames: each track is one person.
  left = int(np.argmin(ds.x[1, :, 0, 5:, 0].mean(-1)))            # the person at x = 200
  for t, (a, b) in enumerate(truth):
    for person, k in ((a, left), (b, 1 - left)):
      np.testing.assert_allclose(ds.x[1, k, t], person[:, :2] * (person[:, 2:] > 0), atol=1e-3)
      np.testing.assert_allclose(ds.score[1, k, t], person[:, 2], atol=1e-6)
  assert ds.score[1, 0, 0, 3] == 0 and not ds.x[1, 0, 0, 3].any()
  assert ds.meta['source'] == 'openpose'


def test_subfolder_per_sequence_and_tracking_ids(tmp_path):
  rng = np.random.default_rng(0)
  folder = tmp_path / 'P002_A005'
  folder.mkdir()
  for t in range(3):
    a, b = _person(rng, (100, 100)), _person(rng, (800, 400 + 50 * t))
    # With --tracking the ids say who is who, whatever the order.
    _write_frame(folder / f'frame{t}_keypoints.json', [b, a] if t == 1 else [a, b],
                 ids=[7, 3] if t == 1 else [3, 7])
  ds = openpose.read_openpose(tmp_path, name_pattern=PATTERN, max_frames=3,
                                      progress=False)
  assert ds.names.tolist() == ['P002_A005'] and ds.subject[0] == 1 and ds.action[0] == 4
  moving = int(np.argmax(ds.x[0, :, :, :, 1].std(axis=(1, 2))))
  assert np.all(ds.x[0, moving, :, :, 0].mean(-1) > 500)         # id 7 stays one track


def test_openpose_bad_input_is_one_line_naming_the_file(tmp_path):
  rng = np.random.default_rng(0)
  base = tmp_path / 'P001_A001'
  base.mkdir()
  _write_frame(base / 'v_000000000000_keypoints.json', [_person(rng, (0, 0))])
  bad = base / 'v_000000000001_keypoints.json'
  _write_frame(bad, [_person(rng, (0, 0), joints=18)])               # OpenPose's COCO model
  with pytest.raises(DataError, match="person 0: 18 joints, but layout 'openpose25' has 25") as e:
    openpose.read_openpose(tmp_path, name_pattern=PATTERN, progress=False)
  assert str(e.value).startswith(str(bad)) and '\n' not in str(e.value)
  person = _person(rng, (0, 0))
  person[4, 2] = 1.7
  _write_frame(bad, [person])
  with pytest.raises(DataError, match=r'person 0: confidence 1.7 is outside \[0, 1\]'):
    openpose.read_openpose(tmp_path, name_pattern=PATTERN, progress=False)
  with open(bad, 'w') as f:
    f.write('{"people": [')
  with pytest.raises(DataError, match='not a readable JSON file'):
    openpose.read_openpose(tmp_path, name_pattern=PATTERN, progress=False)
  _write_frame(bad, [_person(rng, (0, 0))])
  with pytest.raises(DataError, match="layout 'coco17' has 17 joints, the keypoints have 25"):
    openpose.read_openpose(tmp_path, name_pattern=PATTERN, layout='coco17',
                                   progress=False)


def test_name_patterns_that_match_nothing_or_lack_a_subject(tmp_path):
  _openpose_video(tmp_path, 'P001_A001', 2)
  _openpose_video(tmp_path, 'walk_clip', 2, seed=1)
  with pytest.raises(DataError, match=r"matches none of the 2 names"):
    openpose.read_openpose(tmp_path, name_pattern=NamePattern(r'S(?P<subject>\d+)'),
                                   progress=False)
  with pytest.raises(ConfigError, match=r'no \(\?P<subject>...\) group'):
    NamePattern(r'P(\d+)_A(?P<action>\d+)')
  with pytest.raises(DataError, match='walk_clip: name does not match --name_pattern'):
    openpose.read_openpose(tmp_path, name_pattern=PATTERN, progress=False)
  ds = openpose.read_openpose(tmp_path, name_pattern=PATTERN, on_error='skip',
                                      progress=False)
  assert ds.names.tolist() == ['P001_A001']
  assert [s.name for s in ds.meta['skipped']] == ['walk_clip']
  # Without a pattern, NTU/ETRI-style names are needed.
  with pytest.raises(DataError, match=r'no performer id \(P###\)'):
    openpose.read_openpose(tmp_path, progress=False)


def _mediapipe(t, seed=0, channels=4):
  rng = np.random.default_rng(seed)
  arr = np.concatenate([rng.uniform(0.2, 0.8, size=(t, 33, 3)),
                        rng.uniform(0, 1, size=(t, 33, 1))], -1)
  return arr[..., :channels].astype(np.float32)


def test_mediapipe_npy_and_json_folders(tmp_path):
  (tmp_path / 'P01').mkdir()
  np.save(tmp_path / 'P01' / 'A03.npy', _mediapipe(5))
  arr = _mediapipe(4, seed=1)
  frames = [[{'x': float(x), 'y': float(y), 'z': float(z), 'visibility': float(v)}
             for x, y, z, v in frame] for frame in arr]
  frames[2] = []                                          # no pose found in frame 2
  with open(tmp_path / 'P01' / 'A01.json', 'w') as f:
    json.dump(frames, f)
  pattern = NamePattern(r'P(?P<subject>\d+)/A(?P<action>\d+)')
  ds = mediapipe.read_mediapipe(tmp_path, name_pattern=pattern, max_frames=6,
                                       progress=False)
  assert ds.layout == 'mediapipe33' and ds.x.shape == (2, 1, 6, 33, 2)
  assert ds.names.tolist() == ['P01/A01', 'P01/A03']
  np.testing.assert_array_equal(ds.action, [0, 2])
  np.testing.assert_allclose(ds.x[0, 0, :2], arr[:2, :, :2], atol=1e-6)
  assert not ds.x[0, 0, 2].any() and not ds.score[0, 0, 2].any()
  np.testing.assert_allclose(ds.score[0, 0, 3], arr[3, :, 3], atol=1e-6)
  ds3 = mediapipe.read_mediapipe(tmp_path, name_pattern=pattern, keypoint_dims=3,
                                        max_frames=6, progress=False)
  assert ds3.x.shape[-1] == 3 and ds3.layout == 'mediapipe33'


@pytest.mark.parametrize('make,message', [
    (lambda: _mediapipe(3)[:, :25], "25 landmarks, but layout 'mediapipe33' has 33"),
    (lambda: _mediapipe(3) * np.float32([1, 1, 1, 3]), r'visibility .* is outside \[0, 1\]'),
    (lambda: np.where(np.arange(33)[None, :, None] == 5, np.nan, _mediapipe(3)),
     'frame 0: NaN or inf in a frame that has a pose'),
    (lambda: _mediapipe(3)[..., :1], 'landmarks have 1 values'),
])
def test_bad_mediapipe_files(tmp_path, make, message):
  np.save(tmp_path / 'P001_A001.npy', _mediapipe(3))
  np.save(tmp_path / 'P002_A001.npy', make().astype(np.float32))
  with pytest.raises(DataError, match=message) as e:
    mediapipe.read_mediapipe(tmp_path, name_pattern=PATTERN, progress=False)
  assert str(e.value).startswith(str(tmp_path / 'P002_A001.npy'))


def test_prepare_openpose_and_mediapipe_end_to_end(tmp_path):
  _openpose_video(tmp_path / 'op', 'P001_A001', 5)
  _openpose_video(tmp_path / 'op', 'P002_A002', 4, seed=2)
  out = tmp_path / 'op.npz'
  _, summary = prepare(PrepareOptions(
      source='openpose', input=str(tmp_path / 'op'), output=str(out), max_frames=6,
      name_pattern=r'P(?P<subject>\d+)_A(?P<action>\d+)', progress=False))
  ds = load_npz(out)
  assert ds.meta['normalize'] == 'skeleton' and 'normalize: skeleton' in summary
  assert ds.score.shape == (2, 2, 6, 25) and np.abs(ds.x).max() <= 1.0 + 1e-6
  prepare(PrepareOptions(source='openpose', input=str(tmp_path / 'op'), output=str(out),
                         overwrite=True, img_shape='720,1280', max_frames=6,
                         name_pattern=r'P(?P<subject>\d+)_A(?P<action>\d+)', progress=False))
  ds = load_npz(out)
  assert ds.meta['normalize'] == 'image'
  np.testing.assert_array_equal(ds.img_shape, [[720, 1280]] * 2)
  (tmp_path / 'mp').mkdir()
  for i in range(3):
    np.save(tmp_path / 'mp' / f'S001C001P00{i + 1}R001A001.npy', _mediapipe(4, seed=i))
  _, summary = prepare(PrepareOptions(source='mediapipe', input=str(tmp_path / 'mp'),
                                      output=str(tmp_path / 'mp.npz'), max_frames=4,
                                      progress=False))
  ds = load_npz(tmp_path / 'mp.npz')
  np.testing.assert_array_equal(ds.subject, [0, 1, 2])          # NTU-style names
  assert ds.camera is not None and 'mediapipe33' in summary
  with pytest.raises(ConfigError, match='--name_pattern is for --source=pyskl'):
    prepare(PrepareOptions(source='ntu_raw', input=str(tmp_path / 'mp'), output=str(out),
                           overwrite=True, name_pattern='P(?P<subject>\\d+)'))
