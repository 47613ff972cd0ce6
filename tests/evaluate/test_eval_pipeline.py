"""End to end on a tiny run: evaluate stage, report roles, pictures, export, and the anonymize CLI.

Tiny classifiers are registered here so the whole pipeline runs in seconds on two CPU cores; the
real architectures are tested by the model tests.
"""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz
from skeleton_anon.errors import ConfigError, DataError, OutputExistsError
from skeleton_anon.models.registry import CLASSIFIERS, register_classifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _EvalTiny(nn.Module):
  num_classes: int
  width: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    n, m, t, v, c = x.shape
    h = nn.relu(nn.Dense(self.width)(x.reshape(n, m, t, v * c)))
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(jnp.mean(h, axis=(1, 2)))
    return nn.Dense(self.num_classes)(h)


for _name, _width in (('eval_tiny_a', 8), ('eval_tiny_b', 12)):
  if _name not in CLASSIFIERS:
    register_classifier(_name)(
        lambda *, num_classes, layout, num_persons, _w=_width: _EvalTiny(num_classes, _w))


def _config(data_path):
  sys.path.insert(0, os.path.join(REPO, 'configs'))
  try:
    import default
  finally:
    sys.path.pop(0)
  c = default.get_config()
  c.data.path = str(data_path)
  c.data.privacy_target = 'gender'
  c.classifiers.action.arch = 'eval_tiny_a'
  c.classifiers.action.seeds = [0]
  c.classifiers.privacy.arch = 'eval_tiny_a'
  c.classifiers.privacy.seeds = [1]
  for section in (c.pretrain.action, c.pretrain.privacy):
    section.epochs, section.batch_size, section.milestones = 2, 8, []
  c.anonymizer.knobs.num_blocks = 2
  c.anonymize.epochs, c.anonymize.batch_size, c.anonymize.milestones = 1, 8, []
  c.anonymize.privacy_milestones = []
  c.evaluate.holdout_seeds.action, c.evaluate.holdout_seeds.privacy = [3], [4]
  c.evaluate.holdout_archs.action, c.evaluate.holdout_archs.privacy = ['eval_tiny_b'], \
      ['eval_tiny_b']
  c.evaluate.retrained.action, c.evaluate.retrained.privacy = ['eval_tiny_b'], ['eval_tiny_b']
  c.evaluate.noise_sigmas = [0.01, 0.1]
  c.evaluate.batch_size = 8
  c.evaluate.render_samples = [0]
  return c


def _dataset(make_skeletons, n=24):
  x, lengths, _ = make_skeletons(n=n, m=1, t=8, second_person=(), seed=5)
  rng = np.random.default_rng(0)
  gender = (np.arange(n) % 2).astype(np.int32)
  # Make gender visible in the data: one sex is taller (scaled coordinates).
  x = x * np.where(gender == 1, 1.3, 1.0).astype(np.float32)[:, None, None, None, None]
  return SkeletonDataset(
      x=x, lengths=lengths, action=rng.integers(0, 3, n).astype(np.int32),
      subject=(np.arange(n) % 6).astype(np.int32), gender=gender, layout='ntu25',
      split=(np.arange(n) % 3 == 0).astype(np.int8),
      names=np.array([f'P{i % 6:03d}_A{i:03d}' for i in range(n)]))


@pytest.mark.slow
def test_pipeline_evaluate_export_and_anonymize(tmp_path, make_skeletons):
  from skeleton_anon import anonymize
  from skeleton_anon import pipeline

  ds = _dataset(make_skeletons)
  data_path = tmp_path / 'data.npz'
  save_npz(ds, data_path)
  workdir = str(tmp_path / 'run')
  run = pipeline.run(_config(data_path), workdir)

  report = json.loads(open(os.path.join(workdir, 'report.json')).read())
  rows = report['evaluations']
  for task in ('action', 'privacy'):
    roles = {r['role'] for r in rows if r['data'] == 'anonymized' and r['task'] == task}
    assert roles == {'trained_against', 'holdout_seed', 'holdout_arch', 'retrained'}, task
    assert {r['sigma'] for r in rows if r['data'] == 'noise' and r['task'] == task} == \
        {0.01, 0.1}
    assert {r['role'] for r in rows if r['data'] in ('noise', 'retarget')} == \
        {'holdout_seed', 'holdout_arch'}
  assert report['chance']['privacy'] == pytest.approx(
      max(np.mean(ds.gender[ds.split == 1]), 1 - np.mean(ds.gender[ds.split == 1])))
  assert all(0.0 <= r['top1'] <= 1.0 for r in rows)
  assert all(r['top5'] is None for r in rows)                 # 3 actions, 2 genders
  assert report['recon_rmse']['anonymized'] > 0
  assert [n['sigma'] for n in report['recon_rmse']['noise']] == [0.01, 0.1]
  assert report['recon_rmse']['noise'][1]['rmse'] == pytest.approx(0.1, rel=0.2)
  assert report['recon_rmse']['retarget'] > 0
  assert report['run']['ensemble'] == {'action': 1, 'privacy': 1}
  markdown = open(os.path.join(workdir, 'report.md')).read()
  assert '## After anonymization, by role' in markdown
  # The attack suite on every version of the data, its strongest attacker leading report.md.
  suite_rows = report['attacks']['attacks']
  assert {r['data'] for r in suite_rows} == {'original', 'anonymized', 'retarget'}
  assert {'task', 'attacker', 'family', 'metric', 'value', 'ci'} <= set(suite_rows[0])
  for data in ('original', 'anonymized', 'retarget'):
    best = report['strongest'][data]['privacy']
    assert best['value'] == max(r['value'] for r in suite_rows if r['data'] == data
                                and r['task'] == 'privacy' and r['metric'] == best['metric'])
  assert markdown.index('## Strongest attacker') < markdown.index('## Headline: classifiers the anonymizer')
  assert 0 < report['utility']['diversity']['ratio'] < 2
  assert set(report['utility']['train_on_anonymized']['best']) == {'original', 'anonymized'}
  assert report['utility']['train_on_anonymized']['retrained_banks']
  assert report['fidelity']['rmse'] == pytest.approx(report['recon_rmse']['anonymized'])

  plots = os.path.join(workdir, 'plots')
  for name in ('tradeoff.png', 'training_anonymize.png'):
    with Image.open(os.path.join(plots, name)) as image:
      assert image.format == 'PNG' and image.size[0] > 300
  pictures = sorted(os.listdir(os.path.join(plots, 'skeletons')))
  assert [p.rsplit('.', 1)[1] for p in pictures] == ['gif', 'png']

  # export/: train + test anonymized, equal to applying the run's anonymizer.
  exported = load_npz(os.path.join(workdir, 'export', 'anonymized.npz'))
  # The input's samples in the input's order, with the split the run used.
  assert exported.names.tolist() == ds.names.tolist()
  assert exported.split.tolist() == ds.split.tolist()
  manifest = json.load(open(os.path.join(workdir, 'export', 'manifest.json')))
  assert manifest['checkpoint_step'] == run.anonymizer.step > 0
  assert list(manifest['inputs']) == [str(data_path)]
  test_part = exported.x[exported.split == 1]
  np.testing.assert_allclose(test_part, run.anonymize(run.data.test.x, run.data.test.lengths), atol=1e-6)

  # `audit` on the export reproduces the run's own suite numbers on anonymized data (same
  # samples, same split, same deterministic attackers), and with --reference reports fidelity.
  from skeleton_anon import audit
  audited = audit.audit(os.path.join(workdir, 'export', 'anonymized.npz'), 'gender',
                        str(tmp_path / 'audit'), reference=str(data_path), attackers='body_nn',
                        split_rule='file',
                        log=lambda line: None)
  ours = {(r['task'], r['metric']): r['value'] for r in report['attacks']['attacks']
          if r['data'] == 'anonymized' and r['attacker'] == 'body_nn'}
  theirs = {(r['task'], r['metric']): r['value'] for r in audited['attacks']}
  assert ours and ours == {k: theirs[k] for k in ours}
  from skeleton_anon.evaluate.baselines import recon_rmse
  # The audit pairs the whole export (train and test) with the input by names.
  by_name = {n: i for i, n in enumerate(exported.names)}
  order = np.asarray([by_name[n] for n in ds.names])
  assert audited['fidelity']['rmse'] == pytest.approx(
      recon_rmse(ds.x, exported.x[order], ds.lengths), rel=1e-5)
  assert audited['fidelity']['num_paired'] == ds.num_samples

  # The command applied to the same input gives the export, sample by sample per split.
  out = tmp_path / 'anon.npz'
  before = open(data_path, 'rb').read()
  assert anonymize.anonymize_file(workdir, str(data_path), str(out), batch_size=5) == 24
  assert open(data_path, 'rb').read() == before
  applied = load_npz(out)
  for part in (0, 1):
    np.testing.assert_allclose(applied.x[applied.split == part],
                               exported.x[exported.split == part], atol=1e-5)
  np.testing.assert_array_equal(applied.gender, ds.gender)
  with pytest.raises(OutputExistsError):
    anonymize.anonymize_file(workdir, str(data_path), str(out))

  # MS-G3D .npy in, .npy out, same numbers.
  np.save(tmp_path / 'data.npy', ds.x.transpose(0, 4, 2, 3, 1))
  anonymize.anonymize_file(workdir, str(tmp_path / 'data.npy'), str(tmp_path / 'anon.npy'))
  np.testing.assert_allclose(np.load(tmp_path / 'anon.npy').transpose(0, 4, 2, 3, 1),
                             applied.x, atol=1e-5)

  # Incompatible data and a workdir without an anonymizer are one-line errors.
  two = ds.x.repeat(2, axis=1)
  two[:, 1] *= 0.5
  save_npz(SkeletonDataset(x=two, lengths=ds.lengths, action=ds.action, subject=ds.subject,
                           layout='ntu25'), tmp_path / 'two.npz')
  with pytest.raises(DataError, match='2 persons'):
    anonymize.anonymize_file(workdir, str(tmp_path / 'two.npz'), str(tmp_path / 'o.npz'))
  assert not (tmp_path / 'o.npz').exists()
  with pytest.raises(ConfigError, match='no trained anonymizer'):
    anonymize.anonymize_file(str(tmp_path / 'empty'), str(data_path), str(tmp_path / 'o.npz'))
  with pytest.raises(DataError, match='unsupported input format'):
    anonymize.anonymize_file(workdir, str(tmp_path / 'x.csv'), str(tmp_path / 'o.npz'))

  # The command line: a one-line error and exit status 1.
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'skeleton_anon.anonymize', f'--workdir={tmp_path / "empty"}',
       f'--input={data_path}', f'--output={tmp_path / "o.npz"}'],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
  assert 'no trained anonymizer' in proc.stderr


def _bone_length_spread(x, lengths, target):
  """Median |bone length - target| over valid frames of present persons and all bones."""
  from skeleton_anon.data.layouts import get_layout
  from skeleton_anon.data import transforms
  layout = get_layout('ntu25')
  mask = transforms.valid_mask(x, lengths)
  bones = np.linalg.norm(transforms.bone_vectors(x[mask], layout.parents), axis=-1)   # [K, V]
  keep = np.arange(bones.shape[1]) != layout.root
  return float(np.median(np.abs(bones - target)[:, keep]))


@pytest.mark.slow
def test_msg3d_input_with_retargeting_first(tmp_path, make_skeletons):
  """An MS-G3D npy+pkl input, bones retargeted before the anonymizer: the export has the MS-G3D
  pair too, the anonymized skeletons keep the training medians, the command applies the same."""
  from skeleton_anon import anonymize
  from skeleton_anon.data import formats
  from skeleton_anon.data import transforms
  from skeleton_anon import pipeline

  ds = _dataset(make_skeletons)
  ds = SkeletonDataset(x=ds.x, lengths=ds.lengths, action=ds.action, subject=ds.subject,
                       layout='ntu25')
  npy = tmp_path / 'train_data_joint.npy'
  formats.write_msg3d(ds, npy, tmp_path / 'train_label.pkl')
  config = _config(npy)
  config.data.privacy_target, config.data.split_rule = 'subject', 'random'
  config.anonymizer.retarget_first = True
  config.evaluate.holdout_seeds.action, config.evaluate.holdout_seeds.privacy = [], []
  config.evaluate.retrained.action, config.evaluate.retrained.privacy = [], []
  config.evaluate.noise_sigmas = [0.01]
  workdir = str(tmp_path / 'run')
  run = pipeline.run(config, workdir)

  target = transforms.median_bone_lengths(run.data.train.x, run.data.train.lengths, run.data.layout)
  np.testing.assert_allclose(run.anonymizer.retarget_lengths, target)
  anon_test = run.anonymize(run.data.test.x, run.data.test.lengths)
  # The anonymizer starts near identity and trains one short epoch, so bones stay close to the
  # medians; the input's own bone lengths are random per sample and far from them.
  spread_before = _bone_length_spread(run.data.test.x, run.data.test.lengths, target)
  assert _bone_length_spread(anon_test, run.data.test.lengths, target) < 0.2 * spread_before
  report = json.load(open(os.path.join(workdir, 'report.json')))
  assert report['run']['retarget_first'] is True
  assert '(bones retargeted first)' in open(os.path.join(workdir, 'report.md')).read()

  export = os.path.join(workdir, 'export')
  exported_test = formats.read_msg3d(os.path.join(export, 'val_data_joint.npy'),
                                     os.path.join(export, 'val_label.pkl'))
  np.testing.assert_allclose(exported_test.x, anon_test, atol=1e-6)
  manifest = json.load(open(os.path.join(export, 'manifest.json')))
  assert list(manifest['inputs']) == [str(npy), str(tmp_path / 'train_label.pkl')]

  # The command reloads the stored medians and retargets before the network, as the run did.
  out = tmp_path / 'anon.npy'
  anonymize.anonymize_file(workdir, str(npy), str(out))
  applied = np.load(out).transpose(0, 4, 2, 3, 1)
  np.testing.assert_allclose(applied, run.anonymize(ds.x, ds.lengths), atol=1e-5)
