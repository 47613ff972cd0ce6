"""export/: generic npz of train+test, manifest with checksums, refusal to overwrite."""

import hashlib
import json
import os

import numpy as np
import pytest

from skeleton_anon.data.dataset import SkeletonDataset, load_npz
from skeleton_anon.errors import OutputExistsError
from skeleton_anon.evaluate import export


def _ds(make_skeletons, n, offset, seed):
  x, lengths, _ = make_skeletons(n=n, m=2, t=8, seed=seed)
  return SkeletonDataset(x=x, lengths=lengths, action=np.arange(n, dtype=np.int32) + offset,
                         subject=np.zeros(n, np.int32), layout='ntu25',
                         names=np.array([f'n{offset + i}' for i in range(n)]))


def test_combine_splits_restores_input_order(make_skeletons):
  train, test = _ds(make_skeletons, 3, 0, 1), _ds(make_skeletons, 2, 10, 2)
  combined = export.combine_splits(train, test)
  assert combined.split.tolist() == [0, 0, 0, 1, 1]
  assert combined.action.tolist() == [0, 1, 2, 10, 11]
  train.meta['source_index'] = np.array([0, 2, 4])
  test.meta['source_index'] = np.array([1, 3])
  combined = export.combine_splits(train, test)
  assert combined.action.tolist() == [0, 10, 1, 11, 2]
  assert combined.split.tolist() == [0, 1, 0, 1, 0]
  np.testing.assert_array_equal(combined.x[1], test.x[0])


def test_export_writes_npz_and_manifest(tmp_path, make_skeletons):
  train, test = _ds(make_skeletons, 3, 0, 1), _ds(make_skeletons, 2, 10, 2)
  source = tmp_path / 'input.npz'
  source.write_bytes(b'pretend input')
  out_dir = tmp_path / 'export'
  written = export.export_anonymized(
      train, test, out_dir, config={'anonymize': {'alpha': 0.1}}, checkpoint_step=42,
      report_summary={'anonymized': {'action': 0.8}}, input_files=[str(source)])
  assert sorted(written) == ['anonymized.npz', 'manifest.json']
  assert sorted(os.listdir(out_dir)) == ['anonymized.npz', 'manifest.json']
  data = load_npz(written['anonymized.npz'])
  np.testing.assert_array_equal(data.x[:3], train.x)
  np.testing.assert_array_equal(data.x[3:], test.x)
  manifest = json.loads((out_dir / 'manifest.json').read_text())
  assert manifest['checkpoint_step'] == 42
  assert manifest['config'] == {'anonymize': {'alpha': 0.1}}
  assert manifest['inputs'] == {str(source): hashlib.sha256(b'pretend input').hexdigest()}
  assert manifest['outputs']['anonymized.npz'] == export.sha256_file(written['anonymized.npz'])
  with pytest.raises(OutputExistsError):
    export.export_anonymized(train, test, out_dir, overwrite=False)


def test_export_msg3d_copy_reads_back(tmp_path, make_skeletons):
  from skeleton_anon.data import formats
  train, test = _ds(make_skeletons, 3, 0, 1), _ds(make_skeletons, 2, 10, 2)
  for ds in (train, test):
    ds.names = np.array([f'S001C001P{1 + s:03d}R001A{1 + a:03d}'
                         for s, a in zip(ds.subject, ds.action)])
  written = export.export_anonymized(train, test, tmp_path, source_format='msg3d')
  assert set(written) == {'anonymized.npz', 'manifest.json', 'train_data_joint.npy',
                          'train_label.pkl', 'val_data_joint.npy', 'val_label.pkl'}
  back = formats.read_msg3d(written['val_data_joint.npy'], written['val_label.pkl'])
  np.testing.assert_array_equal(back.x, test.x)
  np.testing.assert_array_equal(back.action, test.action)
  assert np.load(written['train_data_joint.npy']).shape == (3, 3, 8, 25, 2)
