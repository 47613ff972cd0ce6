"""MS-G3D npy+pkl read/write and pyskl pickle read."""

import pickle

import numpy as np
import pytest

from skeleton_anon.data import SkeletonDataset, formats, pyskl
from skeleton_anon.errors import DataError, OutputExistsError


def _msg3d_files(tmp_path, n=3, t=8, m=2, names=None, labels=None):
  rng = np.random.default_rng(0)
  data = rng.normal(size=(n, 3, t, 25, m)).astype(np.float32)
  data[0, :, 5:] = 0                      # a shorter sample
  data[1, :, :, :, 1] = 0                 # one person only
  names = names or [f'S001C00{i + 1}P00{i + 2}R001A0{10 + i}.skeleton' for i in range(n)]
  labels = list(range(9, 9 + n)) if labels is None else labels
  npy, pkl = tmp_path / 'train_data_joint.npy', tmp_path / 'train_label.pkl'
  np.save(npy, data)
  with open(pkl, 'wb') as f:
    pickle.dump((names, labels), f)
  return data, npy, pkl


def test_read_msg3d(tmp_path):
  data, npy, pkl = _msg3d_files(tmp_path)
  ds = formats.read_msg3d(npy, pkl)
  assert ds.x.shape == (3, 2, 8, 25, 3)
  np.testing.assert_array_equal(ds.x, data.transpose(0, 4, 2, 3, 1))
  np.testing.assert_array_equal(ds.lengths, [5, 8, 8])
  np.testing.assert_array_equal(ds.action, [9, 10, 11])
  np.testing.assert_array_equal(ds.subject, [1, 2, 3])
  np.testing.assert_array_equal(ds.camera, [1, 2, 3])
  assert ds.names[0] == 'S001C001P002R001A010' and ds.layout == 'ntu25'


def test_write_then_read_round_trip(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 2, 6, 20, 3)).astype(np.float32)
  x[:, 1] = 0
  ds = SkeletonDataset(x=x, lengths=np.full(4, 6, np.int32), action=np.int32([0, 3, 1, 2]),
                       subject=np.int32([5, 5, 7, 0]), layout='kinect_v1_20')
  npy, pkl = tmp_path / 'out.npy', tmp_path / 'out.pkl'
  formats.write_msg3d(ds, npy, pkl, chunk=3)
  raw = np.load(npy)
  assert raw.shape == (4, 3, 6, 20, 2) and raw.dtype == np.float32
  with open(pkl, 'rb') as f:
    names, labels = pickle.load(f)
  assert labels == [0, 3, 1, 2] and all(isinstance(n, str) for n in names)
  back = formats.read_msg3d(npy, pkl)
  np.testing.assert_array_equal(back.x, x)
  np.testing.assert_array_equal(back.subject, ds.subject)
  assert back.layout == 'kinect_v1_20'
  with pytest.raises(OutputExistsError, match='out.npy: output already exists'):
    formats.write_msg3d(ds, npy, pkl)
  formats.write_msg3d(ds, npy, pkl, overwrite=True)
  assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


@pytest.mark.parametrize('kwargs,message', [
    (dict(labels=[1, 2]), '2 labels for 3 samples'),
    (dict(labels=[1, -2, 3]), 'sample 1: labels = -2 is negative'),
    (dict(labels=['a', 'b', 'c']), 'labels must be a flat list of integers'),
    (dict(names=['x1', 'x2', 'x3']), r"sample 0 \(x1\): sample name carries no performer id"),
    (dict(names=['P001']), '1 sample names for 3 samples'),
])
def test_bad_label_files(tmp_path, kwargs, message):
  _, npy, pkl = _msg3d_files(tmp_path, **kwargs)
  with pytest.raises(DataError, match=message):
    formats.read_msg3d(npy, pkl)


def test_bad_arrays(tmp_path):
  _, npy, pkl = _msg3d_files(tmp_path)
  np.save(npy, np.zeros((3, 3, 8, 25), np.float32))
  with pytest.raises(DataError, match=r'train_data_joint.npy: expected float \(N, 3, T, V, M\)'):
    formats.read_msg3d(npy, pkl)
  np.save(npy, np.zeros((3, 3, 8, 17, 1), np.float32) + 1)
  with pytest.raises(DataError, match='17 joints match no registered layout'):
    formats.read_msg3d(npy, pkl)
  data = np.ones((3, 3, 8, 25, 1), np.float32)
  data[2, 0, 0, 0, 0] = np.nan
  np.save(npy, data)
  with pytest.raises(DataError, match='sample 2.*NaN or inf'):
    formats.read_msg3d(npy, pkl)


def _pyskl(tmp_path, anns, split=None):
  path = tmp_path / 'ntu60_3danno.pkl'
  with open(path, 'wb') as f:
    pickle.dump({'split': split or {}, 'annotations': anns}, f)
  return path


def _ann(name, label, m=1, t=5, seed=0):
  kp = np.random.default_rng(seed).normal(size=(m, t, 25, 3)).astype(np.float32)
  return {'frame_dir': name, 'label': label, 'total_frames': t, 'keypoint': kp}


def test_read_pyskl_with_split(tmp_path):
  anns = [_ann('S001C001P001R001A001', 0, m=2, t=7), _ann('S001C002P003R001A002', 1, t=4),
          _ann('S001C003P004R001A002', 1)]
  split = {'xsub_train': ['S001C001P001R001A001'], 'xsub_val': ['S001C002P003R001A002']}
  ds = pyskl.read_pyskl(_pyskl(tmp_path, anns, split), split='xsub', max_frames=6)
  assert ds.x.shape == (2, 2, 6, 25, 3)
  np.testing.assert_array_equal(ds.split, [0, 1])
  np.testing.assert_array_equal(ds.subject, [0, 2])
  np.testing.assert_array_equal(ds.lengths, [6, 4])
  assert ds.meta['cropped'] == 1 and len(ds.meta['skipped']) == 1
  full = pyskl.read_pyskl(_pyskl(tmp_path, anns), max_frames=8)
  assert full.split is None and full.num_samples == 3
  np.testing.assert_array_equal(full.x[1, 0, :4], anns[1]['keypoint'][0])


@pytest.mark.parametrize('mutate,message', [
    (lambda a: a.update(keypoint=a['keypoint'][..., :2]), 'C=2, the first annotation C=3'),
    (lambda a: a.update(keypoint=a['keypoint'] * np.nan), 'NaN or inf'),
    (lambda a: a.update(keypoint=a['keypoint'] * 0), 'all coordinates are zero'),
    (lambda a: a.update(label=-1), 'label values = -1 is negative'),
    (lambda a: a.pop('label'), "needs 'frame_dir', 'label'"),
])
def test_bad_pyskl(tmp_path, mutate, message):
  anns = [_ann('S001C001P001R001A001', 0), _ann('S001C001P002R001A001', 0)]
  mutate(anns[1])
  with pytest.raises(DataError, match=message):
    pyskl.read_pyskl(_pyskl(tmp_path, anns))


def test_pyskl_unknown_split_and_bad_structure(tmp_path):
  path = _pyskl(tmp_path, [_ann('S001C001P001R001A001', 0)], {'xsub_train': []})
  with pytest.raises(DataError, match="split 'xview' needs xview_train"):
    pyskl.read_pyskl(path, split='xview')
  with open(path, 'wb') as f:
    pickle.dump([1, 2], f)
  with pytest.raises(DataError, match="'annotations' list"):
    pyskl.read_pyskl(path)


def test_recording_keys_round_trip_and_validate(tmp_path):
  from skeleton_anon.data import load_npz, save_npz  # pylint: disable=g-import-not-at-top
  x = np.ones((3, 1, 2, 25, 3), np.float32)
  ds = SkeletonDataset(x=x, lengths=np.int32([2, 2, 2]), action=np.int32([0, 1, 2]),
                       subject=np.int32([0, 0, 1]), camera=np.int32([1, 2, 3]),
                       replication=np.int32([1, 1, 2]))
  save_npz(ds, tmp_path / 'a.npz')
  back = load_npz(tmp_path / 'a.npz')
  np.testing.assert_array_equal(back.camera, [1, 2, 3])
  np.testing.assert_array_equal(back.replication, [1, 1, 2])
  assert back.setup is None
  np.testing.assert_array_equal(back.subset(np.array([2, 0])).camera, [3, 1])
  ds.camera = np.int32([1, -2, 3])
  with pytest.raises(DataError, match=r"key 'camera': sample 1: camera = -2 is outside"):
    save_npz(ds, tmp_path / 'b.npz')
  ds.camera = np.int32([1, 2])
  with pytest.raises(DataError, match=r'camera must have shape \[3\]'):
    save_npz(ds, tmp_path / 'b.npz')
  assert not (tmp_path / 'b.npz').exists()
