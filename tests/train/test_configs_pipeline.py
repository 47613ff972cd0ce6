"""Configs build, a tiny pipeline runs, stops, resumes and skips; config mistakes are one line."""

import glob
import importlib.util
import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer, build_classifier
from skeleton_anon import pipeline
from skeleton_anon.pipeline import stages
from skeleton_anon.pipeline.anonymizer import load_anonymizer
from skeleton_anon.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if 'def get_config' in open(p).read())


def load_config(path, arg=None):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds_its_networks(path):
  from skeleton_anon.data.layouts import get_layout
  from skeleton_anon.models import flow_prior as flow_lib
  from skeleton_anon.train import style_prior as style_prior_fit
  c = load_config(path)
  layout = get_layout('ntu25')
  for task in ('action', 'privacy'):
    archs = [c.classifiers[task].arch, *c.evaluate.holdout_archs[task], *c.evaluate.retrained[task]]
    for arch in archs:
      knobs = c.model_knobs.get(arch, None)
      build_classifier(arch, num_classes=3, layout=layout, num_persons=2,
                       **(knobs.to_dict() if knobs is not None else {}))
    # Another family judges every config: a held-out architecture, or the attack suite's
    # feature attackers (recommended.py, where a held-out GCN would double the run on CPU).
    assert (c.evaluate.holdout_archs[task] or c.evaluate.get('attacks', '')) and \
        c.evaluate.retrained[task]
  if c.anonymizer.arch == 'style_prior' and c.anonymizer.get('epsilon', 0.0):
    from skeleton_anon.train import private_prior   # the private fit has knobs of its own
    assert set(c.anonymizer.knobs) <= set(private_prior.KNOBS)
  elif c.anonymizer.arch == 'style_prior':        # fitted, not built: knobs of its fitter
    assert set(c.anonymizer.knobs) <= set(style_prior_fit.KNOBS)
  elif c.anonymizer.arch == 'flow_prior':         # trained by its own fitter, not the registry
    assert set(c.anonymizer.knobs) <= set(flow_lib.KNOBS)
  else:
    build_anonymizer(c.anonymizer.arch, num_persons=2, num_joints=25, layout=layout,
                     **c.anonymizer.knobs.to_dict())
  assert c.anonymize.algorithm in ('ensemble', 'adversarial')


def test_real_dataset_config_says_how_to_prepare_missing_data(tmp_path):
  c = load_config(os.path.join(ROOT, 'configs', 'etri_ens.py'))
  c.data.path = str(tmp_path / 'absent.npz')
  with pytest.raises(ConfigError, match='skeleton_anon.prepare --source=etri_csv'):
    pipeline.make_run(c, str(tmp_path / 'wd'))


def tiny(config):
  """Shrinks any config to seconds: small synthetic data, one-block ST-GCNs, one epoch."""
  c = config
  c.data.path = ''
  c.data.split_rule = 'random'
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_subjects=4, num_actions=2, repetitions=1, num_views=2, num_frames=8, seed=0))
  c.model_knobs = ml_collections.ConfigDict(dict(stgcn=dict(
      base_channels=4, blocks_per_stage=(1, 1, 1), temporal_kernel=3, dropout=0.0)))
  for task in ('action', 'privacy'):
    c.classifiers[task].arch = 'stgcn'
    c.pretrain[task].epochs = 1
    c.pretrain[task].batch_size = 8
    c.evaluate.holdout_archs[task] = []
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[], privacy=[]))
  c.anonymizer.pretrain.epochs = min(c.anonymizer.pretrain.epochs, 1)
  c.anonymizer.pretrain.batch_size = 8
  c.anonymize.epochs = 2
  c.anonymize.batch_size = 8
  return c


def test_pipeline_stops_resumes_and_skips_finished_stages(tmp_path, monkeypatch, caplog):
  # The adversarial row covers alternating min/max steps (the auto-encoder rows run in
  # test_configs_table4.py); evaluation has its own tests, so it is switched off here.
  monkeypatch.setattr(stages.evaluation, 'run_evaluate', lambda run: None)
  monkeypatch.setattr(stages.evaluation, 'run_export', lambda run: None)
  c = tiny(load_config(os.path.join(ROOT, 'configs', 'table4.py'), 'etri_res_adv'))
  workdir = str(tmp_path / 'run')
  c.debug.stop_after_steps = 1
  with pytest.raises(loop.StopRequested):
    pipeline.run(c, workdir)
  c.debug.stop_after_steps = 0                       # debug keys may change between runs
  run = pipeline.run(c, workdir)
  for name in ('pretrain', 'bank_action', 'bank_privacy', 'anonymize'):
    assert os.path.exists(os.path.join(workdir, 'stages', f'{name}.json')), name
  assert set(run.banks) == {'action', 'privacy', 'adversary'}
  assert len(run.history['anonymize']) == 2
  assert 'adversary_accuracy' in run.history['anonymize'][-1]
  x_anon = run.anonymize(run.data.test.x, run.data.test.lengths)
  assert x_anon.shape == run.data.test.x.shape and np.isfinite(x_anon).all()
  logits = run.banks.predict_logits(run.banks['action'], run.data.test.x, run.data.test.lengths)
  assert logits.shape == (1, run.data.test.num_samples, run.data.num_actions)

  loaded, info = load_anonymizer(workdir)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               loaded.variables, run.anonymizer.variables)
  assert info['num_joints'] == 25

  caplog.set_level('INFO')
  again = pipeline.run(c, workdir)
  assert 'finished earlier, skipped' in caplog.text
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               again.anonymizer.variables, run.anonymizer.variables)

  c.anonymize.alpha = 0.5
  with pytest.raises(ConfigError, match='anonymize.alpha'):
    pipeline.run(c, workdir)
  stored = json.load(open(os.path.join(workdir, 'config.json')))
  assert stored['anonymize']['alpha'] == 0.1

  # Continued with more epochs (pipeline/fingerprints.py): anonymization resumes from its
  # checkpoint instead of retraining, and the stages after it rerun; pretrain does not.
  c.anonymize.alpha = 0.1
  c.allow_config_change = True
  c.anonymize.epochs = 3
  more = pipeline.run(c, workdir)
  assert set(more.io.stale) == {'anonymize', 'evaluate', 'export'}
  assert more.anonymizer.step == run.anonymizer.step * 3 // 2
  assert len(more.history['anonymize']) == 3
  assert more.io.markers.read('anonymize')['settings']['anonymize']['epochs'] == 3


def test_main_reports_a_bad_config_key_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'skeleton_anon.main', f'--config={ROOT}/configs/demo.py',
       f'--workdir={tmp_path}', '--config.anonymize.nope=1'],
      capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert result.returncode == 1
  assert result.stderr.strip() == "error: --config.anonymize.nope: no such config key 'nope'"


def test_loss_weights_belong_to_the_loss_form_they_run_under():
  # default.py's alpha/beta are Table 4's residual-ensemble weights, tuned under recon_first.
  default = load_config(os.path.join(ROOT, 'configs', 'default.py'))
  table4 = load_config(os.path.join(ROOT, 'configs', 'table4.py'), 'etri_res_2a2p')
  assert default.anonymize.loss_form == table4.anonymize.loss_form == 'recon_first'
  assert (default.anonymize.alpha, default.anonymize.beta) == (table4.anonymize.alpha,
                                                               table4.anonymize.beta)
  # A config that runs the paper's form brings its own weights.
  for path in CONFIGS:
    c = load_config(path)
    if c.anonymize.loss_form == 'paper':
      assert (c.anonymize.alpha, c.anonymize.beta) != (default.anonymize.alpha,
                                                       default.anonymize.beta), path


def test_holdout_arch_equal_to_the_trained_arch_is_refused():
  c = load_config(os.path.join(ROOT, 'configs', 'default.py'))
  c.evaluate.holdout_archs.privacy = [c.classifiers.privacy.arch]
  with pytest.raises(ConfigError, match='holdout_archs.privacy lists .* another family'):
    stages.bank_specs(c)
