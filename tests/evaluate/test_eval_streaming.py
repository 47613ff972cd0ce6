"""Batch-by-batch application to dataset files: equal to in-memory, atomic, input untouched."""

import hashlib
import os

import numpy as np
import pytest

from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz
from skeleton_anon.errors import DataError, OutputExistsError
from skeleton_anon.evaluate import streaming


def _shift(x, lengths):
  """A stand-in anonymizer: moves valid frames, keeps padding zero."""
  valid = np.arange(x.shape[2])[None, :] < lengths[:, None]
  present = (x != 0).any(axis=(2, 3, 4))
  mask = valid[:, None, :, None, None] & present[:, :, None, None, None]
  return np.where(mask, x * 1.5 + 0.25, 0).astype(np.float32)


def _dataset(make_skeletons, n=7):
  x, lengths, _ = make_skeletons(n=n, m=2, t=10, second_person=(1, 4))
  return SkeletonDataset(x=x, lengths=lengths, action=np.arange(n, dtype=np.int32) % 3,
                         subject=np.arange(n, dtype=np.int32) % 2, layout='ntu25',
                         gender=np.array([0, 1, -1, 0, 1, 0, 1][:n], np.int32),
                         split=(np.arange(n) % 2).astype(np.int8),
                         names=np.array([f's{i}' for i in range(n)]))


def _digest(path):
  return hashlib.sha256(open(path, 'rb').read()).hexdigest()


@pytest.mark.parametrize('compress', [False, True])
def test_npz_stream_equals_in_memory(tmp_path, make_skeletons, compress):
  ds = _dataset(make_skeletons)
  src, dst = tmp_path / 'in.npz', tmp_path / 'out' / 'anon.npz'
  save_npz(ds, src, compress=compress)
  before = _digest(src)
  seen = []
  n = streaming.anonymize_npz(src, dst, _shift, batch_size=3,
                              check=lambda x, layout, **_: seen.append((x.shape, layout)),
                              progress=lambda done, total: seen.append((done, total)))
  assert n == 7 and _digest(src) == before
  assert seen == [((3, 2, 10, 25, 3), 'ntu25'), (3, 7), (6, 7), (7, 7)]
  out = load_npz(dst)
  np.testing.assert_array_equal(out.x, _shift(ds.x, ds.lengths))
  for key in ('lengths', 'action', 'subject', 'gender', 'split', 'names'):
    np.testing.assert_array_equal(getattr(out, key), getattr(ds, key))
  assert sorted(os.listdir(dst.parent)) == ['anon.npz']         # temporaries cleaned up
  with pytest.raises(OutputExistsError):
    streaming.anonymize_npz(src, dst, _shift)
  streaming.anonymize_npz(src, dst, _shift, overwrite=True, batch_size=100)
  with pytest.raises(DataError, match='output is the input'):
    streaming.anonymize_npz(src, src, _shift, overwrite=True)


def test_npz_stream_bad_inputs(tmp_path, make_skeletons):
  ds = _dataset(make_skeletons)
  dst = tmp_path / 'out.npz'
  with pytest.raises(DataError, match='does not exist'):
    streaming.anonymize_npz(tmp_path / 'nope.npz', dst, _shift)
  (tmp_path / 'junk.npz').write_bytes(b'not a zip')
  with pytest.raises(DataError, match='junk.npz: not a readable'):
    streaming.anonymize_npz(tmp_path / 'junk.npz', dst, _shift)
  # A NaN in sample 5 (second batch) is reported with the file's sample number and name.
  bad = ds.x.copy()
  bad[5, 0, 0, 0, 0] = np.nan
  np.savez(tmp_path / 'nan.npz', x=bad, lengths=ds.lengths, action=ds.action,
           subject=ds.subject, layout=np.asarray('ntu25'), names=ds.names)
  with pytest.raises(DataError, match=r'nan.npz: key .x.: sample 5 \(s5\): .*NaN'):
    streaming.anonymize_npz(tmp_path / 'nan.npz', dst, _shift, batch_size=3)
  assert not dst.exists() and not [p for p in os.listdir(tmp_path) if p.startswith('.out')]
  # A check that refuses the data stops before anything is written.
  save_npz(ds, tmp_path / 'ok.npz')
  def refuse(x, layout, **_):
    raise DataError(str(tmp_path / 'ok.npz'), f'anonymizer expects 1 person, data has {x.shape[1]}')
  with pytest.raises(DataError, match='expects 1 person'):
    streaming.anonymize_npz(tmp_path / 'ok.npz', dst, _shift, check=refuse)
  assert not dst.exists()
  # An anonymizer that changes the shape is caught.
  with pytest.raises(ValueError, match='returned'):
    streaming.anonymize_npz(tmp_path / 'ok.npz', dst, lambda x, l: x[:, :1])


def test_msg3d_npy_stream(tmp_path, make_skeletons):
  ds = _dataset(make_skeletons)
  src, dst = tmp_path / 'data.npy', tmp_path / 'anon.npy'
  np.save(src, ds.x.transpose(0, 4, 2, 3, 1))
  before = _digest(src)
  assert streaming.anonymize_msg3d_npy(src, dst, _shift, batch_size=4) == 7
  assert _digest(src) == before
  out = np.load(dst)
  assert out.shape == (7, 3, 10, 25, 2) and out.dtype == np.float32
  expected = _shift(ds.x, streaming.lengths_from_frames(ds.x))
  np.testing.assert_array_equal(out, expected.transpose(0, 4, 2, 3, 1))
  np.testing.assert_array_equal(streaming.lengths_from_frames(ds.x), ds.lengths)
  with pytest.raises(OutputExistsError):
    streaming.anonymize_msg3d_npy(src, dst, _shift)
  np.save(tmp_path / 'flat.npy', np.zeros((2, 3, 4), np.float32))
  with pytest.raises(DataError, match=r'flat.npy.*\(N, 3, T, V, M\)'):
    streaming.anonymize_msg3d_npy(tmp_path / 'flat.npy', tmp_path / 'o.npy', _shift)


def test_anonymize_refuses_other_edges_and_other_normalisation(tmp_path, make_skeletons):
  """Same joint count, another skeleton or joint order, or coordinates normalised otherwise:
  one line, nothing written. The npz records its normalisation (key 'normalize')."""
  import dataclasses
  from skeleton_anon.anonymize import compatibility_check
  from skeleton_anon.data.layouts import get_layout
  ds = _dataset(make_skeletons)
  ntu_edges = get_layout('ntu25').edges
  custom = dataclasses.replace(ds, layout='custom', edges=ntu_edges, meta={'normalize': 'agcn'})
  path = tmp_path / 'custom.npz'
  save_npz(custom, path)
  assert load_npz(path).meta['normalize'] == 'agcn'
  info = dict(num_persons=2, num_joints=25, layout='custom', edges=ntu_edges.tolist(),
              normalize='agcn')
  out = tmp_path / 'out.npz'
  assert streaming.anonymize_npz(path, out, _shift, check=compatibility_check(info, str(path)))
  # Another joint order: the same 24 bones renumbered.
  perm = np.roll(np.arange(25), 3)
  other = {**info, 'edges': perm[ntu_edges].tolist()}
  with pytest.raises(DataError, match='other edges'):
    streaming.anonymize_npz(path, tmp_path / 'a.npz', _shift,
                            check=compatibility_check(other, str(path)))
  with pytest.raises(DataError, match="normalised by 'agcn' .*anonymizer: 'none'"):
    streaming.anonymize_npz(path, tmp_path / 'b.npz', _shift,
                            check=compatibility_check({**info, 'normalize': 'none'}, str(path)))
  assert not (tmp_path / 'a.npz').exists() and not (tmp_path / 'b.npz').exists()
