"""The evaluate and export stages of a run (called by pipeline.stages with the `Run`).

Evaluate answers "how much does the data leak, and does the anonymized version leak less?" with
attackers the anonymizer never saw:
  original data     every pretrained classifier (leakage before, agreement tables);
  anonymized data   every pretrained classifier, by role, plus attackers retrained from scratch
                    on anonymized training data (config.evaluate.retrained);
  noise, retarget   the training-free baselines, scored by the same held-out classifiers.
Writes report.json, report.md, plots/*.png and plots/skeletons/* (process 0 only; every process
takes part in the sharded predictions). A URL workdir (gs://...) gets them through a local staging
folder (pathio.local_dir), as does the export.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import jax
import numpy as np
from absl import logging

from skeleton_anon import pathio
from skeleton_anon.data import setup as data_setup, transforms
from skeleton_anon.errors import ConfigError
from skeleton_anon.evaluate import baselines, plots, render, report as report_lib, scoring
from skeleton_anon.evaluate.export import export_anonymized
from skeleton_anon.evaluate.leakage import majority_chance
from skeleton_anon.pipeline import anonymized, attack_evaluation

TASKS = ('action', 'privacy')


def _is_writer() -> bool:
  return jax.process_index() == 0


def _labels(run) -> dict[str, dict[str, np.ndarray]]:
  return {'train': {'action': run.data.train.action, 'privacy': run.data.privacy_train},
          'test': {'action': run.data.test.action, 'privacy': run.data.privacy_test}}


def _retrained_attackers(run, anon_train: np.ndarray, lengths: np.ndarray) -> dict:
  """Classifiers trained from scratch on anonymized training data, per config.evaluate.retrained.

  This is the strongest honest threat model: the attacker knows the data is anonymized and
  learns its own features on it. Checkpointed like any bank, so an interrupted evaluation resumes.
  """
  cfg = run.config.evaluate
  labels = _labels(run)['train']
  banks = {}
  for task in run.tasks:
    num_classes = run.data.num_actions if task == 'action' else run.data.num_privacy
    for arch in cfg.retrained[task]:
      # Named by the anonymizer's fingerprint: an attacker is tied to the anonymizer it
      # attacked, and is never restored from a checkpoint trained on another one's output.
      name = f'retrained_{task}_{arch}_{run.io.fingerprint("anonymize")}'
      logging.info('evaluate: training the %s attacker %s on anonymized data', task, arch)
      banks[name] = run.banks.train(arch, labels[task], num_classes, tuple(cfg.retrained_seeds),
                                   anon_train, lengths, task=task, role='retrained',
                                   name=name)
  return banks


def _run_facts(run) -> dict:
  cfg = run.config
  return {
      'anonymizer': cfg.anonymizer.arch, 'algorithm': cfg.anonymize.algorithm,
      'retarget_first': bool(cfg.anonymizer.get('retarget_first', False)),
      'alpha': float(cfg.anonymize.alpha), 'beta': float(cfg.anonymize.beta),
      'ensemble': {'action': len(cfg.classifiers.action.seeds),
                   'privacy': len(cfg.classifiers.privacy.seeds)},
      'classifiers': {t: cfg.classifiers[t].arch for t in TASKS},
      'checkpoint_step': None if run.anonymizer is None else int(run.anonymizer.step),
      'layout': run.data.layout.name,
      'privacy_only': run.privacy_only,
      # Banks trained with a validation split: the epoch each member was kept from, and its
      # validation top-1 (pretrain.train_bank_variables).
      'validation': {name: bank.validation for name, bank in run.banks.items()
                     if bank.validation},
      # The split the run used; a file's own split wins over data.split_rule.
      'split': {'used': run.data.split_used, 'config_rule': str(cfg.data.split_rule),
                'file_overrode_config': (run.data.split_used == 'file'
                                         and str(cfg.data.split_rule) not in ('auto', 'file'))},
      # What each stage ran with (from its marker: a continued workdir may have changed the
      # config since), and the stage fingerprints that tie the results together.
      'stages': {stage: {k: v for k, v in (_ran_with(run, stage) or {}).items()
                         if k in ('fingerprint', 'settings', 'finished')}
                 for stage in ('pretrain', 'anonymize', 'evaluate')},
  }


def _ran_with(run, stage: str) -> dict | None:
  """The finished stage's marker, or (for the stage now running) this run's stamp."""
  info = run.io.markers.read(stage)
  return info if info is not None else run.io.stamps.get(stage)


def _scorer(run):
  """scoring.score_banks with intervals by the test split's people."""
  return functools.partial(scoring.score_banks, groups=run.data.test.subject)


def evaluate_arrays(run, anon_test: np.ndarray, anon_train: np.ndarray | None, *,
                    retarget_target: np.ndarray | None = None, anon_lengths: dict | None = None):
  """All report rows, agreement, chance and RMSEs for given anonymized test (and train) data
  (anon_lengths: {'train', 'test'} lengths of the anonymized splits, default the inputs').

  The arrays may be memory maps or `data.rows.Rows`; for a bounded run (pipeline/anonymized.py)
  the noisy copies go to a scratch memory map and the retargeted test split is computed a batch
  at a time. retarget_target: the training split's median bone lengths, when already known.

  Returns (evaluations, agreement, recon_rmse, timing, retrained attacker banks).
  """
  cfg = run.config.evaluate
  test, labels = run.data.test, _labels(run)['test']
  timing, rows = {}, []
  score = _scorer(run)
  anon_lengths = anon_lengths or {'train': run.data.train.lengths, 'test': test.lengths}
  pretrained = {n: b for n, b in run.banks.items() if b.role != 'retrained'}
  held_out = report_lib.HELD_OUT_ROLES

  start = time.time()
  # The adversary's final weights were trained on anonymized data: they score that, not originals.
  on_original = {n: b for n, b in pretrained.items() if n != 'adversary'}
  found, logits = score(on_original, run.banks.predict_logits, test.x, test.lengths,
                                      labels, data='original')
  rows += found
  agreement = scoring.agreement_by_task(on_original, logits)
  found, _ = score(pretrained, run.banks.predict_logits, anon_test, anon_lengths['test'],
                   labels, data='anonymized')
  rows += found
  timing['evaluate_pretrained'] = time.time() - start

  attackers = {}
  if anon_train is not None and any(cfg.retrained[t] for t in TASKS):
    start = time.time()
    attackers = _retrained_attackers(run, anon_train, anon_lengths['train'])
    found, _ = score(attackers, run.banks.predict_logits, anon_test, anon_lengths['test'],
                     labels, data='anonymized')
    rows += found
    timing['evaluate_retrained'] = time.time() - start

  start = time.time()
  rmse = {'anonymized': baselines.recon_rmse(test.x, anon_test, test.lengths), 'noise': []}
  noise_seed = int(cfg.get('noise_seed', run.stage_seed('noise')))
  # One buffer for every noise level (each overwrites it whole).
  buffer = anonymized.scratch_array(run, 'noise', test.x.shape) if cfg.noise_sigmas else None
  for i, sigma in enumerate(cfg.noise_sigmas):
    noisy = baselines.add_noise(test.x, test.lengths, float(sigma), noise_seed + i, out=buffer)
    rmse['noise'].append({'sigma': float(sigma),
                          'rmse': baselines.recon_rmse(test.x, noisy, test.lengths)})
    found, _ = score(pretrained, run.banks.predict_logits, noisy, test.lengths, labels,
                                   data='noise', sigma=float(sigma), roles=held_out)
    rows += found
  noisy = buffer = None
  anonymized.drop_scratch_array(run, 'noise')
  timing['evaluate_noise'] = time.time() - start

  if cfg.get('retarget', True):
    start = time.time()
    target = retarget_target
    if target is None:
      target = transforms.median_bone_lengths(run.data.train.x, run.data.train.lengths,
                                              run.data.layout)
    moved = anonymized.retarget_view(test.x, test.lengths, run.data.layout, target,
                                     lazy=anonymized.is_bounded(run))
    rmse['retarget'] = baselines.recon_rmse(test.x, moved, test.lengths)
    found, _ = score(pretrained, run.banks.predict_logits, moved, test.lengths, labels,
                                   data='retarget', roles=held_out)
    rows += found
    timing['evaluate_retarget'] = time.time() - start
  return rows, agreement, rmse, timing, attackers


def _pictures(run, report: dict, anon_test: np.ndarray, out_dir: str,
              lengths: np.ndarray) -> None:
  """out_dir/plots/: trade-off, training curves, and skeleton strips and GIFs of chosen test
  samples (out_dir: a local folder, the workdir or its staging folder)."""
  plot_dir = os.path.join(out_dir, 'plots')
  plots.plot_tradeoff(report, os.path.join(plot_dir, 'tradeoff.png'))
  for stage_name in ('anonymize', 'anonymizer_pretrain'):
    history = run.history.get(stage_name) or []
    if history:
      plots.plot_training_curves(history, os.path.join(plot_dir, f'training_{stage_name}.png'),
                                 title=f'{stage_name} (per epoch)')
  for name, history in run.banks.history.items():
    # Classifiers trained with a validation split: their training and validation curves.
    if history and any('val_accuracy' in entry for entry in history):
      plots.plot_training_curves(history, os.path.join(plot_dir, f'validation_{name}.png'),
                                 title=f'{name} (per epoch, validation held out)')
  test = run.data.test
  chosen = [int(i) for i in run.config.evaluate.render_samples if 0 <= int(i) < test.num_samples]
  captions = [f'test sample {i}: action {test.action[i]}, {run.data.privacy_target} '
              f'{run.data.privacy_test[i]}' + (f' ({test.names[i]})' if test.names is not None else '')
              for i in chosen]
  render.render_samples(test.x, anon_test, lengths, run.data.layout,
                        os.path.join(plot_dir, 'skeletons'), chosen, captions=captions,
                        gif=bool(run.config.evaluate.get('gif', True)))


def run_evaluate(run) -> dict:
  """The evaluate stage: scores everything, writes the report and pictures, returns report.json."""
  if run.anonymizer is None:
    raise RuntimeError('evaluate needs the trained anonymizer (the anonymize stage has not run)')
  begin = time.time()
  data = run.data
  # Every split anonymized once (export reuses them); the suite and the retrained attackers
  # learn on the anonymized training data.
  splits = anonymized.anonymized_splits(run)
  anon_test, anon_train, anon_lengths = splits['test'], splits['train'], splits['lengths']
  # Side by side with the input (fidelity, pictures): the frames both play.
  common = np.minimum(data.test.lengths, anon_lengths['test'])
  timing_anonymize = time.time() - begin
  retarget = run.config.evaluate.get('retarget', True)
  target = (transforms.median_bone_lengths(data.train.x, data.train.lengths, data.layout)
            if retarget else None)
  rows, agreement, rmse, timing, attackers = evaluate_arrays(run, anon_test, anon_train,
                                                             retarget_target=target,
                                                             anon_lengths=anon_lengths)
  timing['evaluate_anonymize'] = timing_anonymize

  start = time.time()
  versions = {'original': (data.train.x, data.test.x),
              'anonymized': (anon_train, anon_test, anon_lengths['train'], anon_lengths['test'])}
  if retarget:
    lazy = anonymized.is_bounded(run)
    versions['retarget'] = tuple(anonymized.retarget_view(d.x, d.lengths, data.layout, target,
                                                          lazy=lazy)
                                 for d in (data.train, data.test))
  suite_result = attack_evaluation.run_attack_suite(run, versions)
  timing['evaluate_attack_suite'] = time.time() - start
  start = time.time()
  utility = attack_evaluation.utility(run, anon_train, anon_test, anon_lengths)
  action_attackers = {n: b for n, b in attackers.items() if b.task == 'action'}
  if action_attackers and 'skipped' not in utility:
    # The retrained GCN action attackers, scored on real skeletons.
    found, _ = _scorer(run)(action_attackers, run.banks.predict_logits, data.test.x,
                                   data.test.lengths, _labels(run)['test'], data='original')
    utility.setdefault('train_on_anonymized', {})['retrained_banks'] = [
        {'model': r['model'], 'seed': r['seed'], 'top1': r['top1']} for r in found]
  timing['evaluate_utility'] = time.time() - start
  labels = _labels(run)['test']
  timing = {**{k: float(v) for k, v in run.timing.items()}, **timing,
            'evaluate_total': time.time() - begin}
  report = report_lib.build_report(
      dataset={'path': data.source, 'num_train': data.train.num_samples,
               'num_test': data.test.num_samples, 'privacy_target': data.privacy_target,
               'layout': data.layout.name, 'num_actions': data.num_actions,
               'num_privacy': data.num_privacy},
      chance={t: majority_chance(labels[t]) for t in TASKS}, evaluations=rows,
      recon_rmse=rmse, timing=timing, agreement=agreement, run=_run_facts(run),
      attacks=suite_result, utility=utility,
      fidelity=attack_evaluation.fidelity(run, anon_test, common),
      guarantee=None if run.anonymizer is None else run.anonymizer.guarantee)
  if _is_writer():
    with pathio.local_dir(run.workdir) as out_dir:
      report_lib.write_report(report, out_dir)
      _pictures(run, report, anon_test, out_dir, common)
    summary = report_lib.summarize(report)
    logging.info('evaluate: held-out action %s -> %s, %s %s -> %s (retrained attacker %s)',
                 summary['original']['action'], summary['anonymized']['action'],
                 run.data.privacy_target, summary['original']['privacy'],
                 summary['anonymized']['privacy'], summary['anonymized_retrained']['privacy'])
  return report


def _config_dict(config) -> dict:
  return json.loads(config.to_json_best_effort())


def _with_output(ds, x, lengths):
  """ds with anonymized x and the outputs' lengths (the input's unless durations changed)."""
  out = ds.with_x(x)
  if not np.array_equal(lengths, ds.lengths):
    out = dataclasses.replace(out, lengths=np.asarray(lengths, np.int32))
  return out


def _further_draws(run, count: int) -> list[tuple]:
  """(train, test, unlabelled) anonymized by draws 1..count-1 of a prior (export.draws)."""
  if count < 1:
    raise ConfigError(f'export.draws must be >= 1, got {count}')
  out = []
  batch = int(run.config.evaluate.batch_size)
  for k in range(1, count):
    anonymizer = run.anonymizer.redrawn(k)
    parts = [None if ds is None else _with_output(ds, *anonymizer.apply_with_lengths(
                 ds.x, ds.lengths, mesh=run.mesh, batch_size=batch))
             for ds in (run.data.train, run.data.test, run.data.unlabelled)]
    out.append(tuple(parts))
    logging.info('export: draw %d of %d', k + 1, count)
  return out


def run_export(run) -> dict:
  """The export stage: the input anonymized, under workdir/export/, with manifest.json.

  The generic npz holds every input sample in the input's order (names kept), the split the run
  used, and the samples whose privacy label is unknown (label -1, anonymized like the rest).

  The MS-G3D npy+pkl copy is written when the input came in that format (the dataset's
  meta['source'] says 'msg3d') or config.export.msg3d is set. Returns {file name: path}.
  """
  if run.anonymizer is None:
    raise RuntimeError('export needs the trained anonymizer (the anonymize stage has not run)')
  # The splits the evaluate stage anonymized (or, resumed, its scratch copy): not recomputed.
  splits = anonymized.anonymized_splits(run)
  train = _with_output(run.data.train, splits['train'], splits['lengths']['train'])
  test = _with_output(run.data.test, splits['test'], splits['lengths']['test'])
  unlabelled = run.data.unlabelled
  if unlabelled is not None:
    unlabelled = _with_output(unlabelled, splits['unlabelled'], splits['lengths']['unlabelled'])
  draws = _further_draws(run, int(run.config.export.get('draws', 1)))
  if not _is_writer():
    return {}
  summary = None
  report_path = pathio.as_path(run.workdir) / 'report.json'
  if report_path.exists():
    with pathio.local_file(report_path) as local:
      summary = report_lib.summarize(report_lib.load_report(local))
  msg3d = (run.data.train.meta.get('source') == 'msg3d'
           or bool(run.config.export.get('msg3d', False)))
  inputs = [p for p in data_setup.input_files(run.config.data) if os.path.isfile(p)]
  destination = pathio.as_path(run.workdir) / 'export'
  with pathio.local_dir(destination if pathio.is_url(run.workdir)
                        else os.path.join(run.workdir, 'export')) as export_dir:
    written = export_anonymized(train, test, export_dir,
                                unlabelled=unlabelled, source_format='msg3d' if msg3d else None,
                                config=_config_dict(run.config),
                                checkpoint_step=run.anonymizer.step, report_summary=summary,
                                input_files=inputs, overwrite=True, draws=draws)
  if pathio.is_url(run.workdir):   # where the staged files went
    written = {k: str(destination / os.path.relpath(os.fspath(v), export_dir))
               for k, v in written.items()}
  return written
