"""`python -m skeleton_anon.models`: summary, last line `params: <count>`, one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

from skeleton_anon.data.dataset import SkeletonDataset, save_npz
from skeleton_anon.data.layouts import get_layout
from skeleton_anon.errors import ConfigError, DataError
from skeleton_anon.models.__main__ import resolve_layout, summarize


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='')
  return subprocess.run([sys.executable, '-m', 'skeleton_anon.models', *args],
                        capture_output=True, text=True, env=env, timeout=300)


def _custom_file(path):
  x = np.zeros((2, 1, 9, 4, 3), np.float32)
  x[:, :, :6] = np.random.RandomState(0).normal(size=(2, 1, 6, 4, 3))
  ds = SkeletonDataset(x=x, lengths=np.array([6, 6], np.int32),
                       action=np.array([0, 1], np.int32), subject=np.array([0, 1], np.int32),
                       layout='custom', edges=np.array([[1, 0], [2, 1], [3, 1]], np.int32))
  save_npz(ds, path)
  return path


def test_cli_prints_summary_with_param_count_last():
  result = _cli('msg3d', '--num_classes=60', '--persons=2', '--layout=ntu25')
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[-1] == 'params: 3194595'
  assert any(line.split()[0] == 'gcn3d3' for line in lines[1:-1])


def test_cli_unknown_name_and_layout_exit_1_with_one_line():
  for args, words in [(('nope', '--layout=ntu25'), 'unknown model'),
                      (('msg3d', '--layout=kinect_v9'), 'unknown layout')]:
    result = _cli(*args)
    assert result.returncode == 1
    assert result.stderr.strip().count('\n') == 0 and words in result.stderr, result.stderr


def test_summary_of_gender_classifier_lists_top_level_modules():
  lines = summarize('msg3d_nog3d', num_classes=2, persons=1, layout=get_layout('ntu25'),
                    frames=32)
  assert lines[-1] == 'params: 1415855'
  names = [line.split()[0] for line in lines[1:] if line.startswith('  ')]
  assert names[:2] == ['data_bn', 'head'] and 'tcn3' in names and 'gcn3d1' not in names
  module_sum = sum(int(line.split()[1].replace(',', '')) for line in lines[1:]
                   if line.startswith('  '))
  assert module_sum == 1415855


def test_layout_from_dataset_file(tmp_path):
  path = _custom_file(str(tmp_path / 'custom.npz'))
  layout, persons, frames = resolve_layout(path)
  assert (layout.name, layout.num_joints, persons, frames) == ('custom', 4, 1, 9)
  lines = summarize('residual_mlp', num_classes=1, persons=persons, layout=layout,
                    frames=frames)
  features = 1 * 4 * 3
  # Two layers, each an antisymmetric pair of standard-init copies (models/anonymizers.py).
  assert lines[-1] == f'params: {4 * (features * features + features)}'


def test_bad_layout_arguments_are_one_line_errors(tmp_path):
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip file')
  with pytest.raises(DataError, match='junk.npz.*not a readable'):
    resolve_layout(str(junk))
  with pytest.raises(DataError, match='does not exist'):
    resolve_layout(str(tmp_path / 'missing.npz'))
  with pytest.raises(ConfigError, match='unknown model'):
    summarize('nope', num_classes=2, persons=1, layout=get_layout('ntu25'), frames=8)
