"""configs/recommended.py (the flow prior), configs/recommended_style.py (the closed-form style
prior) and configs/recommended_learned.py (the temporal anonymizer against a population of fresh
adversaries and the statistics attacker) end to end at toy size, judged by the attack suite; a single-action file runs privacy-only instead of training
meaningless action classifiers."""

import json
import os
import sys

import numpy as np
import pytest

from skeleton_anon.data import synthetic
from skeleton_anon.data.dataset import save_npz

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _recommended(data_path, privacy_target, name='recommended'):
  sys.path.insert(0, os.path.join(REPO, 'configs'))
  try:
    module = __import__(name)
  finally:
    sys.path.pop(0)
  c = module.get_config()
  c.data.path, c.data.privacy_target = str(data_path), privacy_target
  # Toy sizes; everything else is the recommended setting.
  c.model_knobs.sgn.width = 8
  for section in (c.pretrain.action, c.pretrain.privacy):
    section.epochs, section.batch_size, section.milestones = 1, 16, []
    section.min_steps = 6          # still stretched (1 epoch is 3 steps), still validated
  if c.anonymizer.arch == 'style_prior' and c.anonymizer.epsilon:
    c.anonymizer.knobs.frames = 8
  elif c.anonymizer.arch == 'style_prior':
    c.anonymizer.knobs.components = 4
  elif c.anonymizer.arch == 'flow_prior':
    c.anonymizer.knobs.update(dict(components=4, hidden=16, depth=1, embed=8, sample_steps=2))
    c.anonymize.min_steps = 10
  else:
    c.anonymizer.knobs.width = 8
    c.anonymizer.knobs.dilations = (1, 2)
  c.anonymize.epochs, c.anonymize.batch_size, c.anonymize.milestones = 1, 16, []
  c.anonymize.adversary_reset_every = 2
  c.evaluate.noise_sigmas = [0.05]
  c.evaluate.batch_size = 16
  c.evaluate.render_samples = [0]
  c.evaluate.attacks = 'body_nn,motion_linear'   # two families keep the toy run short
  return c


def _file(tmp_path, num_actions):
  ds = synthetic.make_synthetic(num_subjects=6, num_actions=num_actions, repetitions=2,
                                num_views=2, num_frames=12, seed=0)
  path = tmp_path / 'data.npz'
  save_npz(ds, path)
  return path


@pytest.mark.slow
def test_recommended_flow_prior_runs_judged_by_classifiers_it_never_saw(tmp_path):
  from skeleton_anon import pipeline
  from skeleton_anon.pipeline.anonymizer import load_anonymizer
  workdir = str(tmp_path / 'run')
  c = _recommended(_file(tmp_path, 2), 'subject')
  c.anonymizer.knobs.output_duration = 'drawn'    # and the outputs' own lengths carried through
  run = pipeline.run(c, workdir)
  report = json.load(open(os.path.join(workdir, 'report.json')))
  assert report['run']['anonymizer'] == 'flow_prior'
  # Trained for at least min_steps with Orbax checkpoints; population bodies on.
  assert run.anonymizer.step >= 10 and run.anonymizer.prior.body_spread == 1.0
  assert os.listdir(os.path.join(workdir, 'checkpoints', 'anonymize'))
  assert {'original', 'anonymized', 'retarget'} == set(report['strongest'])
  # Fitted without classifiers: every pretrained bank is a held-out judge, none is white-box.
  assert {b.role for b in run.banks.values()} == {'holdout_seed'}
  assert {e['role'] for e in report['evaluations']} == {'holdout_seed', 'retrained'}
  assert 'adversary' not in run.banks
  assert report['fidelity']['bone_std_changed'] < 1e-4
  # The judges were stretched to min_steps, validated, and their curves drawn.
  validation = report['run']['validation']
  assert set(validation) == {'action', 'privacy'}
  assert all(e >= 1 for v in validation.values() for e in v['epoch'])
  assert validation['privacy']['by'] == 'sequence'
  assert os.path.exists(os.path.join(workdir, 'plots', 'validation_privacy.png'))
  assert 'learning' in report and all('learned' in e for e in report['evaluations'])
  x = run.data.test.x
  x_anon = run.anonymize(x, run.data.test.lengths)
  assert not np.allclose(x_anon, x)
  # Deterministic (evaluation and export agree) and reloadable from the workdir.
  loaded, info = load_anonymizer(workdir)
  assert info['arch'] == 'flow_prior'
  np.testing.assert_array_equal(loaded.apply(x, run.data.test.lengths, mesh=run.mesh), x_anon)
  # Drawn durations: the export and the anonymize command carry the outputs' own lengths.
  from skeleton_anon import anonymize
  from skeleton_anon.data.dataset import load_npz
  from skeleton_anon.data.transforms import lengths_from_frames
  exported = load_npz(os.path.join(workdir, 'export', 'anonymized.npz'))
  np.testing.assert_array_equal(exported.lengths, lengths_from_frames(exported.x))
  source = load_npz(c.data.path)
  assert not np.array_equal(exported.lengths, source.lengths)
  out = tmp_path / 'again.npz'
  anonymize.anonymize_file(workdir, c.data.path, str(out))
  again = load_npz(out)
  np.testing.assert_array_equal(again.lengths, exported.lengths)
  np.testing.assert_array_equal(again.x, exported.x)


@pytest.mark.slow
def test_recommended_learned_trains_against_a_fresh_population(tmp_path, monkeypatch):
  """The learned config's training path (evaluation is the flow prior test's, above)."""
  from skeleton_anon import pipeline
  from skeleton_anon.data import transforms
  from skeleton_anon.pipeline import stages
  monkeypatch.setattr(stages.evaluation, 'run_evaluate', lambda run: None)
  monkeypatch.setattr(stages.evaluation, 'run_export', lambda run: None)
  workdir = str(tmp_path / 'run')
  run = pipeline.run(_recommended(_file(tmp_path, 2), 'subject', 'recommended_learned'), workdir)
  assert run.config.anonymizer.arch == 'temporal' and run.config.anonymizer.retarget_first
  # A population of two adversaries trained from scratch; the first seeds were trained against.
  assert run.banks['adversary'].size == 2
  assert run.banks['privacy'].role == 'trained_against'
  x, lengths = run.data.test.x, run.data.test.lengths
  x_anon = run.anonymize(x, lengths)
  assert not np.allclose(x_anon, x)
  # Bone lengths constant over time by construction (output='bones', retargeted first).
  bones = transforms.bone_lengths(x_anon, run.data.layout.parents)
  mask = transforms.valid_mask(x_anon, lengths)
  spread = [bones[n, m][mask[n, m]].std(axis=0).max() for n, m in zip(*np.nonzero(mask.any(-1)))]
  assert max(spread) < 1e-4


@pytest.mark.slow
def test_recommended_style_prior_fits_saves_and_exports(tmp_path, monkeypatch):
  """The closed-form style prior's stage: fitted, saved, reloaded, exported (evaluation is the
  flow prior test's, above)."""
  from skeleton_anon import pipeline
  from skeleton_anon.pipeline import stages
  from skeleton_anon.pipeline.anonymizer import load_anonymizer
  monkeypatch.setattr(stages.evaluation, 'run_evaluate', lambda run: None)
  workdir = str(tmp_path / 'run')
  c = _recommended(_file(tmp_path, 2), 'subject', 'recommended_style')
  c.export.draws = 3
  run = pipeline.run(c, workdir)
  assert run.anonymizer.arch == 'style_prior' and run.anonymizer.prior.body_spread == 0.0
  assert {b.role for b in run.banks.values()} == {'holdout_seed'}   # fitted: no white box
  x, lengths = run.data.test.x, run.data.test.lengths
  x_anon = run.anonymize(x, lengths)
  assert not np.allclose(x_anon, x)
  loaded, info = load_anonymizer(workdir)
  assert info['arch'] == 'style_prior'
  np.testing.assert_array_equal(loaded.apply(x, lengths, mesh=run.mesh), x_anon)
  assert os.path.exists(os.path.join(workdir, 'export', 'manifest.json'))
  # export.draws=3: two further independent draws of every sample, same labels and split.
  from skeleton_anon.data.dataset import load_npz
  main = load_npz(os.path.join(workdir, 'export', 'anonymized.npz'))
  more = load_npz(os.path.join(workdir, 'export', 'anonymized_draws.npz'))
  n = main.num_samples
  assert more.num_samples == 2 * n
  assert list(more.names[:n]) == [f'{name}~draw1' for name in main.names]
  assert list(more.names[n:]) == [f'{name}~draw2' for name in main.names]
  for key in ('action', 'subject', 'split', 'lengths'):
    np.testing.assert_array_equal(getattr(more, key), np.tile(getattr(main, key), 2), key)
  assert not np.allclose(more.x[:n], main.x) and not np.allclose(more.x[:n], more.x[n:])
  manifest = json.load(open(os.path.join(workdir, 'export', 'manifest.json')))
  assert 'anonymized_draws.npz' in json.dumps(manifest)
  # Only the priors draw: a network's anonymizer refuses in one line.
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.pipeline.anonymizer import Anonymizer
  with pytest.raises(ConfigError, match='export.draws'):
    Anonymizer('temporal', None, {}).redrawn(1)


def test_recommended_private_records_its_budget_and_never_refits(tmp_path, monkeypatch, capsys):
  """configs/recommended_private.py: the person-level DP fit is recorded in anonymizer.json,
  printed by `anonymize`, reloaded (not refitted: its noise is secret) when the run resumes,
  and refused for an anonymizer that has no private fit."""
  from skeleton_anon import anonymize, pipeline
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.pipeline import stages
  # The fit alone (it needs no classifier); evaluation and export are the style prior's.
  monkeypatch.setattr(pipeline, 'STAGES', [s for s in stages.STAGES if s[0] == 'anonymize'])
  workdir = str(tmp_path / 'run')
  c = _recommended(_file(tmp_path, 2), 'subject', 'recommended_private')
  c.anonymizer.epsilon = 60.0               # 6 toy people: 8 would be refused as too few
  run = pipeline.run(c, workdir)
  info = json.load(open(os.path.join(workdir, 'anonymizer', 'anonymizer.json')))
  record = info['differential_privacy']
  assert record['private'] and record['unit'] == 'person' and record['delta'] == 1e-5
  assert record['spent_epsilon'] == pytest.approx(60.0, rel=1e-6)
  assert 'DP with one person as the unit' in anonymize.guarantee_text(workdir)
  first = run.anonymizer.prior.mean
  again = pipeline.run(c, workdir)
  np.testing.assert_array_equal(again.anonymizer.prior.mean, first)
  assert again.anonymizer.guarantee == record
  c.anonymizer.arch = 'flow_prior'
  with pytest.raises(ConfigError, match='only arch style_prior has a private fit'):
    pipeline.run(c, str(tmp_path / 'flow'))
  c.anonymizer.arch, c.anonymizer.delta = 'style_prior', 0.0
  with pytest.raises(ConfigError, match='delta'):
    pipeline.run(c, str(tmp_path / 'bad_delta'))
  c.anonymizer.delta, c.anonymizer.knobs.output_duration = 1e-5, 'sometimes'
  with pytest.raises(ConfigError, match='output_duration'):   # before any work is written
    pipeline.run(c, str(tmp_path / 'bad_duration'))
  assert not os.path.exists(os.path.join(tmp_path, 'bad_duration', 'pretrain'))


@pytest.mark.slow
def test_single_action_file_runs_privacy_only(tmp_path):
  from skeleton_anon import pipeline
  workdir = str(tmp_path / 'run')
  run = pipeline.run(_recommended(_file(tmp_path, 1), 'subject'), workdir)
  report = json.load(open(os.path.join(workdir, 'report.json')))
  assert 'single action' in report['run']['privacy_only']
  assert not [b for b in run.banks.values() if b.task == 'action']
  assert not [e for e in report['evaluations'] if e['task'] == 'action']
  assert report['strongest']['anonymized']['action'] is None
  assert 'single action' in report['utility']['skipped']
  assert '**Privacy only:**' in open(os.path.join(workdir, 'report.md')).read()


def test_seeds_argument_gives_every_network_bank_n_seeds():
  sys.path.insert(0, os.path.join(REPO, 'configs'))
  try:
    import recommended
    import recommended_style
  finally:
    sys.path.pop(0)
  c = recommended_style.get_config('seeds=3')
  assert c.classifiers.action.seeds == [0, 1, 2]
  assert c.classifiers.privacy.seeds == [100, 101, 102]
  assert c.evaluate.retrained_seeds == [300, 301, 302]
  assert recommended.get_config().classifiers.action.seeds == [0]
  with pytest.raises(ValueError, match='seeds=N'):
    recommended.get_config('seeds=many')
