import numpy as np
import pytest

from skeleton_anon.data import SkeletonDataset, get_layout, load_npz, save_npz
from skeleton_anon.data.layouts import custom_layout
from skeleton_anon.errors import DataError, OutputExistsError


@pytest.mark.parametrize('name,v', [('ntu25', 25), ('kinect_v1_20', 20)])
def test_registered_layouts_are_trees(name, v):
  layout = get_layout(name)
  assert layout.num_joints == v
  assert len(layout.bones) == v - 1
  parents = layout.parents
  assert parents[layout.root] == layout.root
  order = layout.topological_order
  seen = set()
  for j in order:
    assert j == layout.root or parents[j] in seen
    seen.add(int(j))


def test_unknown_layout_and_bad_custom():
  with pytest.raises(DataError, match="unknown layout 'foo'"):
    get_layout('foo')
  with pytest.raises(DataError, match='not connected'):
    custom_layout([[1, 0], [3, 2]], 4)


def _tiny(n=4, m=2, t=6, v=25):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, m, t, v, 3)).astype(np.float32)
  lengths = np.array([6, 5, 4, 6][:n], np.int32)
  for i, l in enumerate(lengths):
    x[i, :, l:] = 0
  return SkeletonDataset(x=x, lengths=lengths, action=np.arange(n, dtype=np.int32),
                         subject=np.zeros(n, np.int32), gender=np.array([0, 1, -1, 1][:n]),
                         names=np.array([f's{i}' for i in range(n)]))


def test_npz_roundtrip_and_overwrite(tmp_path):
  ds = _tiny()
  path = tmp_path / 'd.npz'
  save_npz(ds, path)
  back = load_npz(path)
  np.testing.assert_array_equal(back.x, ds.x)
  assert back.gender.dtype == np.int32 and back.layout == 'ntu25'
  with pytest.raises(OutputExistsError, match='--overwrite'):
    save_npz(ds, path)


def _refused_in_one_line(path, arrays, message):
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=message) as e:
    load_npz(path)
  assert str(path) in str(e.value) and '\n' not in str(e.value)


@pytest.mark.parametrize('mutate,message', [
    (lambda a: a.update(x=a['x'].astype(np.float64)), "key 'x': x must be float32"),
    (lambda a: a.pop('action'), "missing required key 'action'"),
    (lambda a: a.update(action=a['action'][:2]), 'action must have shape'),
    (lambda a: a.update(subject=-a['subject'] - 1), 'sample 0 \\(s0\\): subject = -1'),
    (lambda a: a['x'].__setitem__((2, 0, 0, 0, 0), np.nan), 'sample 2 \\(s2\\): .*NaN'),
    (lambda a: a['x'].__setitem__((1, 0, 5, 0, 0), 1.0), 'sample 1.*frames beyond lengths'),
    (lambda a: a['x'].__setitem__(3, 0.0), 'sample 3.*all coordinates are zero'),
    (lambda a: a.update(layout=np.asarray('kinect_v1_20')), 'has 20 joints but the data has 25'),
])
def test_bad_npz_is_named(tmp_path, mutate, message):
  ds = _tiny()
  arrays = dict(x=ds.x.copy(), lengths=ds.lengths, action=ds.action, subject=ds.subject,
                gender=ds.gender, names=ds.names, layout=np.asarray('ntu25'))
  mutate(arrays)
  _refused_in_one_line(tmp_path / 'bad.npz', arrays, message)


def _tiny_2d(n=4):
  """coco17 image-plane keypoints [n, 2, 6, 17, 2] with scores, padded frames zero."""
  ds = _tiny(n=n, v=17)
  x = ds.x[..., :2].copy()
  score = np.where(np.any(x != 0, axis=-1), 0.8, 0.0).astype(np.float32)
  return SkeletonDataset(x=x, lengths=ds.lengths, action=ds.action, subject=ds.subject,
                         gender=ds.gender, names=ds.names, layout='coco17', score=score)


def test_2d_keypoints_with_scores_roundtrip(tmp_path):
  ds = _tiny_2d()
  save_npz(ds, tmp_path / 'k.npz')
  back = load_npz(tmp_path / 'k.npz')
  assert back.num_channels == 2 and back.layout == 'coco17'
  np.testing.assert_array_equal(back.x, ds.x)
  np.testing.assert_array_equal(back.score, ds.score)
  part = back.subset(np.array([2, 0]))
  np.testing.assert_array_equal(part.score, ds.score[[2, 0]])
  assert 'score' not in back.meta['extra_keys']


@pytest.mark.parametrize('mutate,message', [
    (lambda a: a.update(score=a['score'][..., :5]), r'score must have shape \[4, 2, 6, 17\]'),
    (lambda a: a['score'].__setitem__((1, 0, 2, 3), 1.5), r'sample 1 \(s1\): score = 1.5 is '
     r'outside \[0, 1\]'),
    (lambda a: a['score'].__setitem__((2, 0, 2, 3), np.nan), r'sample 2.*score contains NaN'),
    (lambda a: a.update(score=a['score'].astype(np.int32)), 'score must be a float array'),
    (lambda a: a.update(x=np.zeros((4, 2, 6, 17, 4), np.float32)),
     r'x must have shape \[N, M, T, V, 3\] \(3D\) or \[N, M, T, V, 2\]'),
])
def test_bad_scores_and_channels_are_named(tmp_path, mutate, message):
  ds = _tiny_2d()
  arrays = dict(x=ds.x.copy(), lengths=ds.lengths, action=ds.action, subject=ds.subject,
                names=ds.names, layout=np.asarray('coco17'), score=ds.score.copy())
  mutate(arrays)
  _refused_in_one_line(tmp_path / 'bad.npz', arrays, message)


@pytest.mark.parametrize('content, what', [(b'x,y,z\n1,2,3\n', 'not a zip archive'),
                                           (None, 'a .npy array')])
def test_a_file_that_is_not_an_npz_says_so(tmp_path, content, what):
  path = tmp_path / 'data.npz'
  if content is None:
    np.save(tmp_path / 'data.npy', np.zeros(3))
    (tmp_path / 'data.npy').rename(path)
  else:
    path.write_bytes(content)
  with pytest.raises(DataError, match=rf'data.npz: not an .npz file \({what}\)'):
    load_npz(path)
