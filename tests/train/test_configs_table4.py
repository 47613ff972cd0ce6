"""The Table 4 configs carry the paper's hyperparameters, run in a tiny override, and say how to
make their data when it is missing."""

import functools
import importlib.util
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from skeleton_anon.errors import ConfigError
from skeleton_anon.models import registry
from skeleton_anon import pipeline
from skeleton_anon.data.setup import prepare_data
from skeleton_anon.pipeline import stages
from tiny_models import TinyClassifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(REPO, 'configs')

# Table 4 of the paper's appendix: (lr min-step, lr max-step or None, batch size, alpha, beta),
# plus what the row name encodes: dataset, anonymizer, ensemble size (None: adversarial).
TABLE4 = {
    'etri_ae_1a1p': (0.00044, None, 8, 0.0045, 0.0182, 'etri', 'autoencoder', 1),
    'etri_ae_2a2p': (0.00033, None, 6, 0.0045, 0.0182, 'etri', 'autoencoder', 2),
    'etri_ae_3a3p': (0.00066, None, 12, 0.0045, 0.0182, 'etri', 'autoencoder', 3),
    'etri_ae_adv': (0.00180, 0.0030, 24, 0.1000, 0.0067, 'etri', 'autoencoder', None),
    'etri_res_1a1p': (0.00075, None, 10, 0.0333, 0.0067, 'etri', 'residual_mlp', 1),
    'etri_res_2a2p': (0.00060, None, 8, 0.0333, 0.0067, 'etri', 'residual_mlp', 2),
    'etri_res_3a3p': (0.00060, None, 12, 0.0333, 0.0067, 'etri', 'residual_mlp', 3),
    'etri_res_adv': (0.00180, 0.0030, 24, 0.1000, 0.0067, 'etri', 'residual_mlp', None),
    'ntu_ae_adv': (0.05000, 0.0100, 30, 0.0400, 0.1000, 'ntu', 'autoencoder', None),
    'ntu_res_adv': (0.00180, 0.0030, 24, 0.1000, 0.0067, 'ntu', 'residual_mlp', None),
}

TINY_ARCH = 'tiny_test_classifier'


@registry.register_classifier(TINY_ARCH)
def _build_tiny(*, num_classes, layout, num_persons):
  del layout, num_persons  # the tiny model pools over persons and joints
  return TinyClassifier(num_classes)


def load_config(name: str) -> ml_collections.ConfigDict:
  """A Table 4 row (`configs/table4.py:<name>`) or configs/<name>.py, loaded by path as
  config_flags does."""
  row = name in TABLE4
  path = os.path.join(CONFIG_DIR, 'table4.py' if row else f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(name) if row else module.get_config()


def test_rows_are_the_table_and_an_unknown_row_is_named():
  module_path = os.path.join(CONFIG_DIR, 'table4.py')
  spec = importlib.util.spec_from_file_location('config_table4', module_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert set(module.ROWS) == set(TABLE4)
  with pytest.raises(ValueError, match="unknown row 'etri_res_9a9p'; rows: etri_ae_1a1p"):
    module.get_config('etri_res_9a9p')
  # configs/etri_ens.py, the name the paper's main result goes by, is row etri_res_3a3p.
  assert load_config('etri_ens').to_dict() == load_config('etri_res_3a3p').to_dict()


@pytest.mark.parametrize('name', sorted(TABLE4))
def test_config_holds_its_table4_row(name):
  lr, max_lr, batch, alpha, beta, dataset, anonymizer, size = TABLE4[name]
  c = load_config(name)
  a = c.anonymize
  assert (a.lr, a.batch_size, a.alpha, a.beta) == (lr, batch, alpha, beta)
  assert (a.optimizer, a.momentum, a.weight_decay) == ('sgd', 0.9, 1e-5)
  assert a.loss_form == 'recon_first'
  assert c.anonymizer.arch == anonymizer
  assert c.anonymizer.frozen == (['encoder'] if anonymizer == 'autoencoder' else [])
  assert (c.anonymizer.pretrain.epochs > 0) == (anonymizer == 'autoencoder')
  if size is None:
    assert (a.algorithm, a.k, a.privacy_lr) == ('adversarial', 1, max_lr)
    assert len(c.classifiers.action.seeds) == len(c.classifiers.privacy.seeds) == 1
  else:
    assert a.algorithm == 'ensemble'
    assert len(c.classifiers.action.seeds) == len(c.classifiers.privacy.seeds) == size
  # Holdout seeds are never among the seeds the anonymizer is trained against.
  for task in ('action', 'privacy'):
    assert not set(c.evaluate.holdout_seeds[task]) & set(c.classifiers[task].seeds)
  if dataset == 'etri':
    assert (c.data.path, c.data.privacy_target) == ('data/etri_gender.npz', 'gender')
    assert (c.classifiers.action.arch, c.classifiers.privacy.arch) == ('msg3d', 'msg3d_nog3d')
    assert c.pretrain.privacy.lr == 0.03 and c.pretrain.privacy.batch_size == 120
  else:
    assert (c.data.path, c.data.privacy_target) == ('data/ntu60_xview.npz', 'subject')
    assert (c.classifiers.action.arch, c.classifiers.privacy.arch) == ('msg3d', 'msg3d')
    assert c.data.split_rule == 'ntu_xview' and c.pretrain.privacy.batch_size == 60
  assert f'--output={c.data.path}' in c.data.prepare_hint


@pytest.mark.parametrize('name', ['etri_res_adv', 'ntu_ae_adv'])
def test_missing_dataset_says_how_to_prepare_it(name, tmp_path):
  c = load_config(name)
  c.data.path = str(tmp_path / 'absent.npz')
  with pytest.raises(ConfigError) as info:
    prepare_data(c.data)
  message = str(info.value)
  assert '\n' not in message and 'absent.npz' in message
  source = 'etri_csv' if name.startswith('etri') else 'ntu_raw'
  assert f'python -m skeleton_anon.prepare --source={source}' in message
  # The same command is written down where the rows live.
  with open(os.path.join(CONFIG_DIR, 'table4.py')) as f:
    assert f'--source={source}' in f.read()


def test_main_with_default_data_path_fails_with_prepare_command(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'skeleton_anon.main', f'--config={CONFIG_DIR}/table4.py:ntu_res_adv',
       f'--workdir={tmp_path / "run"}'],
      cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  error = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert len(error) == 1, proc.stderr[-2000:]
  assert 'data/ntu60_xview.npz' in error[0]
  assert '--source=ntu_raw' in error[0] and '--split=ntu_xview' in error[0]


def tiny(c: ml_collections.ConfigDict, dataset: str) -> ml_collections.ConfigDict:
  """The config on a few synthetic samples with tiny classifiers, one short anonymization epoch.

  Compiling MS-G3D training steps takes minutes on two shared cores, so the banks use a tiny
  registered classifier (the configured architectures are built and traced separately), and
  classifier pretraining is zero epochs (the engine's own tests cover it): this test is about what
  each Table 4 row configures (algorithm, ensemble sizes, anonymizer, its pretraining, data).
  """
  c.data.path = ''
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_subjects=6, num_actions=2, repetitions=2, num_views=3, num_frames=8,
      num_persons=2 if dataset == 'ntu' else 1, seed=0))
  for task in ('action', 'privacy'):
    c.classifiers[task].arch = TINY_ARCH
    c.pretrain[task].epochs = 0
    c.evaluate.holdout_seeds[task] = []
    c.evaluate.holdout_archs[task] = []
  if c.anonymizer.pretrain.epochs:
    c.anonymizer.pretrain.epochs = 1
    c.anonymizer.pretrain.batch_size = 64
    c.anonymizer.knobs.hidden = [8]
    c.anonymizer.knobs.latent = 4
  c.anonymize.epochs = 1
  return c


_traced_shapes = {}


def _logits_shape(model, x) -> tuple[int, ...]:
  """The logits' shape of `model` on x, traced without compiling (cached: tracing full MS-G3D
  takes seconds and several configs share a model)."""
  key = (model, x.shape)
  if key not in _traced_shapes:
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    logits = jax.eval_shape(functools.partial(model.apply, train=False), variables, x)
    _traced_shapes[key] = logits.shape
  return _traced_shapes[key]


# One config per kind of row (dataset x anonymizer x algorithm): the rows of one kind differ
# only in numbers, which test_config_holds_its_table4_row checks for every row.
RUN_ROWS = ('etri_ae_2a2p', 'etri_ae_adv', 'etri_res_3a3p', 'etri_res_adv', 'ntu_ae_adv',
            'ntu_res_adv')


@pytest.mark.parametrize('name', RUN_ROWS)
def test_config_runs_a_few_steps_in_a_tiny_override(name, tmp_path, monkeypatch):
  dataset, anonymizer, size = TABLE4[name][5:]
  configured = load_config(name).classifiers
  c = tiny(load_config(name), dataset)
  run = pipeline.make_run(c, str(tmp_path))
  # What the anonymize stage hands to training (after the auto-encoder's pretraining).
  handed = {}
  train_anonymizer = stages.anonymization.train_anonymizer

  def recording(model, variables, *args, **kwargs):
    handed['variables'] = jax.tree.map(np.asarray, variables)
    return train_anonymizer(model, variables, *args, **kwargs)

  monkeypatch.setattr(stages.anonymization, 'train_anonymizer', recording)
  # The configured classifiers build for this data and give one logit per class.
  for task, classes in (('action', run.data.num_actions), ('privacy', run.data.num_privacy)):
    model = run.banks.classifier(configured[task].arch, classes)
    assert _logits_shape(model, run.data.train.x[:2]) == (2, classes)
  stages.pretrain_stage(run)
  stages.anonymize_stage(run)

  expected_steps = -(-run.data.train.num_samples // c.anonymize.batch_size)
  assert run.anonymizer.step == expected_steps >= 2
  epoch = run.history['anonymize'][-1]
  assert np.isfinite(epoch['loss'])
  assert run.banks['action'].size == run.banks['privacy'].size == (size or 1)
  if size is None:
    # The adversary's max step moved it away from its starting weights.
    assert 'adversary_loss' in epoch
    start = jax.tree.leaves(run.banks['privacy'].variables['params'])
    end = jax.tree.leaves(run.banks['adversary'].variables['params'])
    assert any(not np.array_equal(np.asarray(s), np.asarray(e)) for s, e in zip(start, end))
  else:
    assert 'adversary' not in run.banks
  assert ('anonymizer_pretrain' in run.history) == (anonymizer == 'autoencoder')
  if anonymizer == 'autoencoder':
    # The frozen encoder is bit-identical after the whole anonymize stage; the decoder moved.
    before, after = handed['variables']['params'], run.anonymizer.variables['params']
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.asarray(b)),
                 before['encoder'], after['encoder'])
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in
               zip(jax.tree.leaves(before['decoder']), jax.tree.leaves(after['decoder'])))
  if dataset == 'ntu':
    assert run.data.privacy_target == 'subject' and run.data.train.num_persons == 2
    assert set(run.data.privacy_test) <= set(run.data.privacy_train)
  else:
    assert run.data.privacy_target == 'gender' and run.data.num_privacy == 2
  if run.io.writer is not None:
    run.io.writer.close()


def test_unknown_row_on_the_command_line_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'skeleton_anon.main', f'--config={CONFIG_DIR}/table4.py:nope',
       f'--workdir={tmp_path / "run"}'],
      cwd=str(tmp_path), env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True,
      text=True, timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
  assert "unknown row 'nope'; rows: etri_ae_1a1p" in proc.stderr
  assert 'Traceback' not in proc.stderr
