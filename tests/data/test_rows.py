"""data.rows.Rows: splits of a memory-mapped file read a batch at a time, never copied whole."""

import numpy as np
import pytest

from skeleton_anon.data import rows as rows_lib, transforms
from skeleton_anon.data.dataset import SkeletonDataset, save_npz, load_npz, validate
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.data.rows import Rows


def test_rows_index_like_the_selected_array():
  base = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
  index = np.array([7, 2, 3, 9])
  r = Rows(base, index)
  want = base[index]
  assert r.shape == (4, 3) and len(r) == 4 and r.dtype == np.float32 and r.ndim == 2
  np.testing.assert_array_equal(r[1:3], want[1:3])
  np.testing.assert_array_equal(r[::-1], want[::-1])
  np.testing.assert_array_equal(r[np.array([3, 0, 0])], want[[3, 0, 0]])
  np.testing.assert_array_equal(r[np.array([True, False, True, False])], want[[0, 2]])
  np.testing.assert_array_equal(r[-1], want[-1])
  np.testing.assert_array_equal(r[1, 2:], want[1, 2:])
  np.testing.assert_array_equal(np.asarray(r), want)
  with pytest.raises(IndexError):
    r[4]
  # A selection of a selection reads the base directly.
  inner = Rows(r, [2, 0])
  assert inner.base is base
  np.testing.assert_array_equal(inner.index, [3, 7])
  np.testing.assert_array_equal(rows_lib.take(r, [0, 3]), want[[0, 3]])
  np.testing.assert_array_equal(rows_lib.take(base, [0, 3]), base[[0, 3]])


def test_transformed_rows_equal_the_transform_of_the_whole():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(300, 2, 10, 25, 3)).astype(np.float32)
  lengths = rng.integers(3, 11, 300).astype(np.int32)
  x *= (np.arange(10)[None] < lengths[:, None])[:, None, :, None, None]
  x[::3, 1] = 0
  layout = get_layout('ntu25')
  target = transforms.median_bone_lengths(x, lengths, layout)
  whole = transforms.retarget(x, lengths, layout, target)
  lazy = Rows(x, transform=lambda chunk, pos: transforms.retarget(chunk, lengths[pos], layout,
                                                                  target))
  pick = np.random.default_rng(0).permutation(300)[:37]
  np.testing.assert_array_equal(lazy[pick], whole[pick])       # bit for bit, any batch
  np.testing.assert_array_equal(lazy[250:300], whole[250:300])


def test_mapped_splits_are_rows_and_validate(tmp_path):
  n = 6
  x = np.zeros((n, 1, 4, 25, 3), np.float32)
  x[..., 1] = np.arange(n, dtype=np.float32)[:, None, None, None] + 1
  ds = SkeletonDataset(x=x, lengths=np.full(n, 4, np.int32), action=np.zeros(n, np.int32),
                       subject=np.arange(n, dtype=np.int32), layout='ntu25')
  save_npz(ds, tmp_path / 'd.npz')
  mapped = load_npz(tmp_path / 'd.npz', mmap=True)
  assert rows_lib.is_mapped(mapped.x) and not rows_lib.is_mapped(x)
  part = mapped.subset(np.array([4, 1]), view=True)
  assert isinstance(part.x, Rows) and rows_lib.is_mapped(part.x)
  np.testing.assert_array_equal(part.x[:], x[[4, 1]])
  np.testing.assert_array_equal(part.subject, [4, 1])
  assert validate(part).x is part.x                           # checked chunk by chunk, not read
  assert rows_lib.float32_rows(part.x) is part.x


def test_gather_batch_reads_rows_of_a_map():
  from skeleton_anon.train import parallel
  base = np.arange(20 * 2, dtype=np.float32).reshape(20, 2)
  r = Rows(base, np.arange(0, 20, 2))
  mesh = parallel.make_mesh()
  batch = parallel.gather_batch({'x': r}, np.array([3, 1, 4]), 3, mesh)
  size = parallel.padded_batch_size(3, mesh)
  np.testing.assert_array_equal(np.asarray(batch['x'])[:3], base[[6, 2, 8]])
  assert np.asarray(batch['weight']).tolist() == [1, 1, 1] + [0] * (size - 3)
