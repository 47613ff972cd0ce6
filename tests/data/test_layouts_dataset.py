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
  path = tmp_path / 'bad.npz'
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=message) as e:
    load_npz(path)
  assert str(path) in str(e.value) and '\n' not in str(e.value)


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
