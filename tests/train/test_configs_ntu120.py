"""configs/ntu120.py: every row loads, reads the protocol's file, and says how to make it."""

import importlib.util
import os

import numpy as np
import pytest

from skeleton_anon import pipeline
from skeleton_anon.data import splits
from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = os.path.join(ROOT, 'configs', 'ntu120.py')


def _module():
  spec = importlib.util.spec_from_file_location('ntu120', PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('row,target,rule,path', [
    ('xset_reid', 'subject', 'ntu_xset', 'data/ntu120_xset.npz'),
    ('xset_gender', 'gender', 'ntu_xset', 'data/ntu120_xset.npz'),
    ('xsub_gender', 'gender', 'ntu_xsub', 'data/ntu120_xsub.npz'),
])
def test_rows_load_with_their_protocol(row, target, rule, path):
  c = _module().get_config(row)
  assert (c.data.privacy_target, c.data.split_rule, c.data.path) == (target, rule, path)
  hint = c.data.prepare_hint
  assert hint.startswith('python -m skeleton_anon.prepare --source=ntu_raw')
  assert f'--split={rule}' in hint and f'--output={path}' in hint
  assert 'NTU_RGBD120_samples_with_missing_skeletons.txt' in hint and '--gender_file=' in hint
  assert c.classifiers.privacy.arch == ('msg3d' if target == 'subject' else 'msg3d_nog3d')
  assert c.anonymizer.arch == 'residual_mlp' and c.anonymize.algorithm == 'adversarial'


def test_default_row_and_the_rows_that_do_not_exist():
  module = _module()
  assert module.get_config().data.privacy_target == 'subject'
  with pytest.raises(ValueError, match='no xsub_reid row: cross-subject tests performers'):
    module.get_config('xsub_reid')
  with pytest.raises(ValueError, match='unknown row'):
    module.get_config('xview_reid')


def test_missing_file_names_the_prepare_command(tmp_path):
  c = _module().get_config('xsub_gender')
  c.data.path = str(tmp_path / 'absent.npz')
  with pytest.raises(ConfigError, match='--source=ntu_raw .*--split=ntu_xsub'):
    pipeline.make_run(c, str(tmp_path / 'wd'))


def test_xset_trains_on_even_setups_as_ntu120_defines_it():
  setup = np.array([1, 2, 17, 18, 31, 32], np.int32)
  ds = SkeletonDataset(x=np.ones((6, 1, 2, 25, 3), np.float32), lengths=np.full(6, 2),
                       action=np.zeros(6, np.int32), subject=np.arange(6, dtype=np.int32),
                       setup=setup)
  np.testing.assert_array_equal(splits.make_split(ds, 'ntu_xset'), [1, 0, 1, 0, 1, 0])
