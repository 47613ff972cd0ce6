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


def test_prepared_data_keeps_order_and_unlabelled_samples_for_the_export(tmp_path,
                                                                          make_skeletons):
  """The export is the input anonymized: every sample (unknown gender too), in the input's
  order, names and split kept."""
  import ml_collections
  from skeleton_anon.data.dataset import save_npz
  from skeleton_anon.data.setup import prepare_data
  n = 12
  x, lengths, _ = make_skeletons(n=n, m=1, t=8, seed=3)
  gender = (np.arange(n) % 2).astype(np.int32)
  gender[[3, 8]] = -1
  ds = SkeletonDataset(x=x, lengths=lengths, action=(np.arange(n) % 2).astype(np.int32),
                       subject=(np.arange(n) % 4).astype(np.int32), gender=gender,
                       layout='ntu25', split=(np.arange(n) % 3 == 0).astype(np.int8),
                       names=np.array([f's{i:02d}' for i in range(n)]))
  path = tmp_path / 'in.npz'
  save_npz(ds, path)
  cfg = ml_collections.ConfigDict(dict(path=str(path), privacy_target='gender', max_frames=0,
                                       split_rule='file', label_path=''))
  data = prepare_data(cfg)
  assert data.unlabelled.names.tolist() == ['s03', 's08']
  assert data.train.num_samples + data.test.num_samples == n - 2
  combined = export.combine_splits(data.train, data.test, data.unlabelled)
  assert combined.names.tolist() == ds.names.tolist()
  assert combined.gender.tolist() == gender.tolist()
  assert combined.split.tolist() == ds.split.tolist()
  np.testing.assert_array_equal(combined.x, ds.x)
