"""Memory-mapped npz members: the mapped array is the stored one, and refusals are explicit."""

import numpy as np
import pytest

from skeleton_anon.data import npz_mmap
from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz


def _dataset(n=5, t=7):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 2, t, 25, 3)).astype(np.float32)
  lengths = np.array([7, 6, 5, 7, 3][:n], np.int32)
  for i, length in enumerate(lengths):
    x[i, :, length:] = 0
  return SkeletonDataset(x=x, lengths=lengths, action=np.arange(n, dtype=np.int32),
                         subject=np.arange(n, dtype=np.int32) % 2)


def test_mapped_x_equals_the_stored_array_and_is_file_backed(tmp_path):
  ds = _dataset()
  save_npz(ds, tmp_path / 'd.npz')
  back = load_npz(tmp_path / 'd.npz', mmap=True)
  assert isinstance(back.x, np.memmap) and not back.x.flags.writeable
  np.testing.assert_array_equal(np.asarray(back.x), ds.x)
  assert back.meta['mmap_refused'] is None
  # Every other member too, mapped one by one (e.g. int32 labels at their own offsets).
  np.testing.assert_array_equal(npz_mmap.map_npz_member(tmp_path / 'd.npz', 'lengths'),
                                ds.lengths)


def test_a_compressed_file_is_read_into_memory_and_says_why(tmp_path):
  ds = _dataset()
  save_npz(ds, tmp_path / 'c.npz', compress=True)
  back = load_npz(tmp_path / 'c.npz', mmap=True)
  assert not isinstance(back.x, np.memmap)
  np.testing.assert_array_equal(back.x, ds.x)
  assert 'compressed' in back.meta['mmap_refused'] and '\n' not in back.meta['mmap_refused']
  with pytest.raises(npz_mmap.NotMappable, match='compressed'):
    npz_mmap.map_npz_member(tmp_path / 'c.npz', 'x')


def test_validation_of_a_mapped_file_still_names_the_bad_sample(tmp_path):
  ds = _dataset()
  ds.x[3, 0, 0, 0, 0] = np.inf
  np.savez(tmp_path / 'bad.npz', x=ds.x, lengths=ds.lengths, action=ds.action,
           subject=ds.subject, layout=np.asarray('ntu25'))
  with pytest.raises(Exception, match=r'sample 3.*NaN or inf'):
    load_npz(tmp_path / 'bad.npz', mmap=True)
