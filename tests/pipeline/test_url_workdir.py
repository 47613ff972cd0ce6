"""A gs:// workdir's bookkeeping, without a network: the stored config, stage markers, stale-stage
invalidation, the style-prior anonymizer's files, staged report/export folders and sweep copies,
all on fsspec's in-memory filesystem standing in for Cloud Storage behind etils.epath.

Orbax's array files are not covered here (tensorstore talks to GCS itself); the pipeline passes
it the same epath.Path (train/checkpoint.py).
"""

import dataclasses
import os
import uuid
from unittest import mock

import fsspec
import ml_collections
import numpy as np
import pytest
from etils.epath import backend as epath_backend, gpath


class _MemoryGcs(epath_backend._FileSystemSpecBackend):  # pylint: disable=protected-access
  """gs:// paths in fsspec's in-memory filesystem (objects, no real folders, like GCS); local
  paths on the local filesystem."""

  def fs(self, path):
    return fsspec.filesystem('memory' if os.fspath(path).startswith('gs://') else 'file')


@pytest.fixture
def gs_workdir(tmp_path, monkeypatch):
  """A fresh gs://BUCKET/run in memory; the test runs in tmp_path, which must stay empty (an
  os.path.abspath of the URL would make the local folder ./gs:/BUCKET/run)."""
  bucket = f'gs://test-{uuid.uuid4().hex[:8]}'
  monkeypatch.chdir(tmp_path)
  with mock.patch.dict(gpath._PREFIX_TO_BACKEND, {'gs': _MemoryGcs()}), \
       mock.patch.object(gpath, '_is_tf_installed', lambda: False):
    yield f'{bucket}/run'
  memory = fsspec.filesystem('memory')
  for key in [k for k in memory.store if k.startswith(bucket)]:
    del memory.store[key]
  assert os.listdir(tmp_path) == [], 'a URL became a local path'


def _objects(prefix: str) -> list[str]:
  """Every object stored under a gs:// prefix, relative to it."""
  return sorted(k[len(prefix) + 1:] for k in fsspec.filesystem('memory').store
                if k.startswith(prefix + '/'))


def _config(**anonymize):
  c = ml_collections.ConfigDict({'seed': 0, 'data': {'path': ''}, 'classifiers': {'action': 'sgn'},
                                 'pretrain': {}, 'anonymizer': {'arch': 'temporal'},
                                 'anonymize': {'epochs': 3, 'alpha': 1.0, **anonymize},
                                 'evaluate': {'attacks': 'fast'}, 'export': {'enabled': True},
                                 'allow_config_change': False, 'debug': {}})
  return c


def test_config_check_and_markers_live_in_the_bucket(gs_workdir):
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.pipeline.workdir import StageMarkers, check_config, stored_config
  assert stored_config(gs_workdir) is None
  check_config(gs_workdir, _config())
  assert stored_config(gs_workdir)['anonymize']['alpha'] == 1.0
  check_config(gs_workdir, _config())                      # the same config: fine
  with pytest.raises(ConfigError, match='anonymize.alpha'):
    check_config(gs_workdir, _config(alpha=2.0))

  markers = StageMarkers(gs_workdir)
  assert not markers.done('pretrain') and markers.names() == []
  markers.stamps['pretrain'] = {'fingerprint': 'abc'}
  markers.mark('pretrain', {'banks': ['action']})
  markers.mark('bank_action')
  assert markers.read('pretrain')['fingerprint'] == 'abc'
  assert markers.names() == ['bank_action', 'pretrain']
  # Written atomically: no temporary object is left behind.
  assert _objects(gs_workdir) == ['config.json', 'stages/bank_action.json', 'stages/pretrain.json']

  # A synced view answers from what it read and stays current through mark/remove.
  synced = StageMarkers(gs_workdir).sync()
  synced.remove('bank_action')
  synced.mark('anonymize')
  assert synced.names() == ['anonymize', 'pretrain'] == StageMarkers(gs_workdir).names()


def test_stale_stages_lose_markers_and_checkpoints_in_the_bucket(gs_workdir):
  from skeleton_anon import pathio
  from skeleton_anon.pipeline import fingerprints
  from skeleton_anon.pipeline.workdir import StageMarkers
  from skeleton_anon.train.checkpoint import has_checkpoint
  old = _config().to_dict()
  markers = StageMarkers(gs_workdir)
  prints = fingerprints.fingerprints(old, [])
  for stage in ('pretrain', 'bank_action', 'anonymize', 'evaluate', 'export'):
    if stage in prints:
      markers.stamps[stage] = {'fingerprint': prints[stage],
                               'settings': fingerprints.stage_settings(old, stage)}
    markers.mark(stage)
  checkpoints = f'{gs_workdir}/checkpoints'
  for name in ('action', 'anonymize', 'retrained_privacy_sgn_0123'):   # objects, no folders
    pathio.as_path(f'{checkpoints}/{name}/3/data').write_bytes(b'x')
  assert has_checkpoint(f'{checkpoints}/action') and not has_checkpoint(f'{checkpoints}/nope')

  new = _config(alpha=2.0).to_dict()
  stale = fingerprints.invalidate_stale(markers.sync(), checkpoints, new,
                                        fingerprints.fingerprints(new, []))
  assert stale == ['anonymize', 'evaluate', 'export']
  assert markers.names() == StageMarkers(gs_workdir).names() == ['bank_action', 'pretrain']
  assert _objects(checkpoints) == ['action/3/data']
  # The input-file fingerprint stays local-file only; a URL is left out, not a crash.
  assert fingerprints.input_files_digest([f'{gs_workdir}/data.npz']) == []


def test_style_prior_anonymizer_saves_and_loads_in_the_bucket(gs_workdir):
  from skeleton_anon.data.layouts import get_layout
  from skeleton_anon.models.style_prior import StylePrior
  from skeleton_anon.pipeline.anonymizer import (STYLE_PRIOR, Anonymizer, load_anonymizer,
                                                 save_anonymizer)
  from skeleton_anon.pipeline.workdir import StageMarkers
  rng = np.random.default_rng(0)
  scalars = {'frames': 8, 'salt': 3, 'keep_style': 0.5, 'body_spread': 0.5, 'align': True,
             'duration_mode': 'drawn'}
  prior = StylePrior.from_arrays({f.name: scalars.get(f.name, rng.normal(size=(2, 3)))
                                  for f in dataclasses.fields(StylePrior)})
  layout = get_layout('ntu25')
  save_anonymizer(Anonymizer(STYLE_PRIOR, None, {}, 0, layout=layout, prior=prior), gs_workdir,
                  knobs={'components': 4}, num_persons=2, num_joints=25, num_frames=8,
                  layout_name='ntu25')
  assert _objects(gs_workdir) == ['anonymizer/anonymizer.json', 'anonymizer/style_prior.npz']
  StageMarkers(gs_workdir).mark('anonymize')
  loaded, info = load_anonymizer(gs_workdir)
  assert info['knobs'] == {'components': 4} and loaded.layout.name == 'ntu25'
  for name, value in prior.to_arrays().items():
    np.testing.assert_array_equal(loaded.prior.to_arrays()[name], value, err_msg=name)


def test_local_writers_stage_through_a_folder_and_sweeps_copy_checkpoints(gs_workdir):
  from skeleton_anon import pathio, sweep
  from skeleton_anon.evaluate import report as report_lib
  # What the evaluate stage does with report_lib and matplotlib, which write local files.
  with pathio.local_dir(gs_workdir) as out_dir:
    assert os.path.isdir(out_dir) and not pathio.is_url(out_dir)
    os.makedirs(os.path.join(out_dir, 'plots', 'skeletons'))
    with open(os.path.join(out_dir, 'plots', 'skeletons', 'a.png'), 'wb') as f:
      f.write(b'png')
    with open(os.path.join(out_dir, 'report.json'), 'w') as f:
      f.write('{"dataset": {}, "chance": {}, "evaluations": [], "recon_rmse": {}, "timing": {}}')
  assert not os.path.exists(out_dir)                       # the staging folder is gone
  assert _objects(gs_workdir) == ['plots/skeletons/a.png', 'report.json']
  with pathio.local_file(f'{gs_workdir}/report.json') as local:
    assert report_lib.load_report(local)['evaluations'] == []

  # A sweep point takes the first point's checkpoints, file by file.
  first, second = f'{gs_workdir}/sweep/a', f'{gs_workdir}/sweep/b'
  pathio.as_path(f'{first}/checkpoints/action/2/x/data').write_bytes(b'123')
  assert sweep.copy_checkpoints(first, second, ['action', 'privacy']) == ['action']
  assert _objects(f'{second}/checkpoints') == ['action/2/x/data']
  assert sweep.copy_checkpoints(first, second, ['action']) == []     # never over a target's own
