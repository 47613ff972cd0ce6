"""What a run's stages share, split by job: the data (`PreparedData`), the workdir (`RunIO`), the
classifier banks and how to train more (`Banks`), and the `Run` that holds them together."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from skeleton_anon import multihost, pathio
from skeleton_anon.data import rows as rows_lib, splits
from skeleton_anon.data.setup import PreparedData, input_files, prepare_data
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_classifier
from skeleton_anon.models.style_prior import check_duration_mode
from skeleton_anon.pipeline import fingerprints
from skeleton_anon.pipeline.anonymizer import Anonymizer
from skeleton_anon.pipeline.workdir import (StageMarkers, check_config, config_dict,
                                            stored_config)
from skeleton_anon.train import parallel, pretrain, private_prior, steps
from skeleton_anon.train.checkpoint import has_checkpoint
from skeleton_anon.train.loop import StopRequested
from skeleton_anon.train.pretrain import Bank

TASKS = ('action', 'privacy')


def raise_if_stopped(result, name: str) -> None:
  """A training loop that stopped at debug.stop_after_steps ends the run, resumably."""
  if not result.finished:
    raise StopRequested(f'{name}: stopped after the requested debug.stop_after_steps steps, '
                        'checkpoint saved; rerun the same command to resume')


def stage_seed(config, name: str) -> int:
  """A seed for stage `name` derived from config.seed (stable across runs and processes)."""
  return (int(config.seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


@dataclasses.dataclass
class RunIO:
  """The workdir side of a run: stage markers, checkpoint folders, the TensorBoard writer.

  workdir: a local folder or a URL (gs://BUCKET/run). writer is a tensorboardX SummaryWriter on
  workdir/tb (None on processes other than 0). stamps: stage -> {'fingerprint', 'settings'} of
  this run (pipeline/fingerprints.py), written into each finished stage's marker. shared: the
  run's markers as process 0 read them (StageMarkers.sync; make_run sets it), so every process
  skips the same stages; without it `markers` reads the disk.
  """
  workdir: str
  writer: Any = None
  stamps: dict = dataclasses.field(default_factory=dict)
  stale: tuple = ()               # stages made stale at start because their inputs changed
  shared: StageMarkers | None = None

  @property
  def markers(self) -> StageMarkers:
    markers = self.shared if self.shared is not None else StageMarkers(self.workdir)
    markers.stamps = self.stamps
    return markers

  def fingerprint(self, stage: str) -> str:
    return self.stamps[stage]['fingerprint']

  def checkpoint_dir(self, name: str) -> str:
    return str(pathio.as_path(self.workdir) / 'checkpoints' / name)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


class Banks(dict):
  """name -> pretrain.Bank, plus how this run builds, trains and applies classifiers.

  Names: 'action' and 'privacy' (role 'trained_against', the classifiers the anonymizer was
  optimised against; for the adversarial algorithm 'privacy' holds the adversary's *starting*
  weights and 'adversary' its final ones), 'action_holdout_seed', 'privacy_holdout_seed' (role
  'holdout_seed'), 'action_holdout_arch_<arch>', 'privacy_holdout_arch_<arch>' (role
  'holdout_arch'). Retrained attackers are made by the evaluator with `train`.
  """

  def __init__(self, config, mesh: Mesh, data: PreparedData, io: RunIO):
    super().__init__()
    self.config, self.mesh, self.data, self.io = config, mesh, data, io
    self.history: dict[str, list] = {}

  def form(self, *banks_variables: dict) -> str:
    """How members of these banks run inside a step (config.bank_form; see steps.BANK_FORMS)."""
    try:
      return steps.resolve_bank_form(str(self.config.get('bank_form', 'auto')), *banks_variables)
    except ValueError as e:
      raise ConfigError(f'bank_form: {e}') from None

  def classifier(self, arch: str, num_classes: int):
    """The Linen module of `arch` for this data, with config.model_knobs[arch] applied."""
    knobs = self.config.model_knobs.get(arch, None)
    knobs = knobs.to_dict() if knobs is not None else {}
    max_frames = int(self.config.classifiers.get('max_frames', 0))
    if max_frames > 0 and 'frame_stride' not in knobs:
      # Classifiers read at most about max_frames frames: every k-th frame of long sequences.
      knobs['frame_stride'] = max(1, -(-self.data.train.num_frames // max_frames))
    return build_classifier(arch, num_classes=num_classes, layout=self.data.layout,
                            num_persons=self.data.train.num_persons, **knobs)

  def train(self, arch: str, labels_train, num_classes: int, seeds, x_train, lengths_train,
            *, task: str | None = None, role: str = 'retrained', name: str | None = None) -> Bank:
    """Trains len(seeds) classifiers of `arch` on (x_train, labels_train) from scratch.

    Training settings come from config.pretrain[task]; `task` defaults to 'privacy' when the labels
    are this run's privacy_train and to 'action' otherwise. The bank checkpoints under
    checkpoints/<name> (default: derived from arch, task, seeds and a digest of the labels), so an
    interrupted evaluation resumes instead of retraining. Returns a Bank with `role`.
    """
    labels_train = np.asarray(labels_train, np.int32)
    if task is None:
      privacy = self.data.privacy_train
      same = labels_train.shape == privacy.shape and np.array_equal(labels_train, privacy)
      task = 'privacy' if same else 'action'
    seeds = tuple(int(s) for s in seeds)
    digest = zlib.crc32(labels_train.tobytes() + np.asarray(lengths_train).tobytes())
    if name is None:
      name = f'{role}_{task}_{arch}_{"-".join(map(str, seeds))}_{digest:08x}'
    # Batch order and step keys from what the members learn (task, architecture, labels), not
    # from which members share the bank, so a seed's classifier is the same in any bank.
    stream = f'{task}_{arch}_{digest:08x}'
    model = self.classifier(arch, num_classes)
    x_train = rows_lib.float32_rows(x_train)      # a split of a mapped file stays on disk
    directory = self.io.checkpoint_dir(name)
    variables = pretrain.init_bank(model, seeds, x_train, abstract=has_checkpoint(directory))
    arrays = {'x': x_train, 'lengths': np.asarray(lengths_train, np.int32), 'label': labels_train}
    train_cfg = self.config.pretrain[task]
    arrays, validation, how = self._validation_split(arrays, train_cfg, stream)
    result = pretrain.train_bank_variables(
        model, variables, arrays, train_cfg, mesh=self.mesh,
        checkpoint_dir=directory, seed=stage_seed(self.config, stream), name=name,
        writer=self.io.writer, stop_after_steps=int(self.config.debug.stop_after_steps),
        bank_form=self.form(variables), member_ids=seeds, validation=validation)
    raise_if_stopped(result, name)
    self.history[name] = result.history
    chosen = pretrain.selection(result)
    if chosen is not None:
      chosen.update(samples=int(len(validation['label'])), by=how)
    return Bank(arch=arch, task=task, role=role, model=model,
                variables=result.states['bank'].variables, seeds=seeds,
                num_classes=num_classes, history=result.history, validation=chosen)

  def validation_by(self, train_cfg) -> str:
    """'sequence' or 'people': train_cfg.val_by, where 'auto' follows the privacy target
    (closed-set re-identification: the same people, other sequences; gender: other people)."""
    by = str(train_cfg.get('val_by', 'auto'))
    if by not in splits.VALIDATION_BY:
      raise ConfigError(f'val_by {by!r} is not one of {splits.VALIDATION_BY}')
    if by == 'auto':
      by = 'people' if self.data.privacy_target == 'gender' else 'sequence'
    return by

  def _validation_split(self, arrays: dict, train_cfg, stream: str):
    """(training arrays, validation arrays or None, how) for train_cfg.val_fraction > 0.

    The training samples are the run's training split in order (the original or an anonymized
    version of it), so their subjects are data.train.subject."""
    fraction = float(train_cfg.get('val_fraction', 0.0) or 0.0)
    if fraction <= 0:
      return arrays, None, None
    by = self.validation_by(train_cfg)
    subjects = self.data.train.subject
    if len(subjects) != len(arrays['label']):
      subjects = None
    held = splits.validation_split(arrays['label'], subjects, fraction, by=by,
                                   seed=stage_seed(self.config, f'validation_{stream}'))
    keep, val = np.flatnonzero(~held), np.flatnonzero(held)
    def part(index, lazy):
      x = arrays['x']
      # The training part is read a batch at a time (no copy of the split); validation is small.
      x = rows_lib.Rows(x, index) if lazy else rows_lib.take(x, index)
      return {'x': x, 'lengths': arrays['lengths'][index], 'label': arrays['label'][index]}
    logging.info('%s: %d training samples, %d held out for validation (by %s)', stream,
                 len(keep), len(val), by)
    return part(keep, True), part(val, False), by

  def predict_logits(self, bank: Bank, x, lengths) -> np.ndarray:
    """Eval-mode logits [S, N, K] of every member of `bank` on x [N, M, T, V, C]."""
    return pretrain.predict_logits(bank.model, bank.variables, rows_lib.float32_rows(x),
                                   np.asarray(lengths, np.int32), mesh=self.mesh,
                                   batch_size=int(self.config.evaluate.batch_size),
                                   bank_form=self.form(bank.variables))


@dataclasses.dataclass
class Run:
  """Everything a stage needs.

  config: the ml_collections ConfigDict of the run. mesh: the device mesh ('data' axis over all
  devices). data: train/test SkeletonDatasets after the split and cropping, their layout and
  privacy labels (see data.setup.PreparedData). io: the workdir (markers, checkpoints, writer).
  banks: the classifier banks by name, and how to train more (see Banks).
  anonymizer: the trained Anonymizer (None before the anonymize stage).
  anonymized: the anonymized splits, once evaluate or export has made them.
  history: stage name -> list of per-epoch metric dicts ({'epoch', 'step', 'loss', ...}).
  timing: stage name -> seconds spent in this process (0 for a skipped stage).
  """
  config: Any
  mesh: Mesh
  data: PreparedData
  io: RunIO
  banks: Banks
  anonymizer: Anonymizer | None = None
  history: dict[str, list] = dataclasses.field(default_factory=dict)
  timing: dict[str, float] = dataclasses.field(default_factory=dict)
  # (anonymizer, {'train', 'test', 'unlabelled'}): the anonymized splits that anonymizer made,
  # computed once for evaluate and export (pipeline/anonymized.py).
  anonymized: tuple | None = None

  @property
  def workdir(self) -> str:
    return self.io.workdir

  @property
  def tasks(self) -> tuple[str, ...]:
    """('action', 'privacy'), or ('privacy',) for a single-action dataset (see privacy_only)."""
    return ('privacy',) if self.privacy_only else TASKS

  @property
  def privacy_only(self) -> str | None:
    """Why the run has no action term, or None: a dataset of one action (e.g. walking only)
    has nothing for an action classifier to recognise, so the anonymizer is trained and judged
    on privacy and fidelity alone."""
    if self.data.num_actions < 2:
      return (f'the dataset has a single action ({self.data.num_actions} action class): no '
              'action term, no action classifiers; privacy and fidelity only')
    return None

  def stage_seed(self, name: str) -> int:
    return stage_seed(self.config, name)

  def anonymize(self, x, lengths) -> np.ndarray:
    """The trained anonymizer applied to x (retargeting first when configured), float32."""
    if self.anonymizer is None:
      raise RuntimeError('the anonymize stage has not run')
    return self.anonymizer.apply(x, lengths, mesh=self.mesh,
                                 batch_size=int(self.config.evaluate.batch_size))


def _stage_stamps(config, workdir: str, previous: dict | None, markers: StageMarkers):
  """(this run's stage stamps, the stages made stale): stages of the workdir whose inputs
  changed lose their markers (fingerprints.invalidate_stale) before anything runs. `previous`
  is the config the workdir stored before this run (judges markers without a fingerprint);
  `markers` are process 0's (synced). Process 0 lists the input files too (another host's copy
  of the data has other modification times), so every process makes the same decisions."""
  plain = config_dict(config)
  files = multihost.from_process_0(
      lambda: fingerprints.input_files_digest(input_files(config.data)))
  prints = fingerprints.fingerprints(plain, files)
  stale = fingerprints.invalidate_stale(markers, str(pathio.as_path(workdir) / 'checkpoints'),
                                        plain, prints, previous=previous, data_files=files,
                                        writer=jax.process_index() == 0)
  if stale and jax.process_count() > 1:
    # Nobody looks for a checkpoint before process 0 has removed the stale ones.
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices('skeleton_anon_invalidate_stale')
  if stale:
    logging.info('stages rerun because their inputs changed: %s (and what follows them)',
                 ', '.join(stale))
  stamps = {stage: {'fingerprint': fp, 'settings': fingerprints.stage_settings(plain, stage)}
            for stage, fp in prints.items()}
  return stamps, tuple(stale)


def make_run(config, workdir: str, mesh: Mesh | None = None) -> Run:
  """Checks the workdir's config, loads the data and returns a Run with no stage done yet.

  `workdir` may be a URL (gs://BUCKET/run). With several processes, process 0's workdir decides
  (its stored config and markers); every process must call this at the same point.
  """
  previous = stored_config(workdir)
  check_config(workdir, config)
  private_prior.check_request(config.anonymizer.arch, config.anonymizer.get('epsilon', 0.0),
                              config.anonymizer.get('delta', 1e-5))
  if 'output_duration' in config.anonymizer.knobs:     # a prior's: refused before any work
    check_duration_mode(config.anonymizer.knobs.output_duration)
  data = prepare_data(config.data)
  logging.info('data %s: %d train, %d test samples, %d actions, %d %s classes', data.source,
               data.train.num_samples, data.test.num_samples, data.num_actions,
               data.num_privacy, data.privacy_target)
  writer = None
  if jax.process_index() == 0:
    import tensorboardX
    writer = tensorboardX.SummaryWriter(f'{workdir}/tb')
  mesh = mesh or parallel.make_mesh()
  markers = StageMarkers(workdir).sync()
  stamps, stale = _stage_stamps(config, workdir, previous, markers)
  io = RunIO(workdir=workdir, writer=writer, stamps=stamps, stale=stale, shared=markers)
  banks = Banks(config, mesh, data, io)
  return Run(config=config, mesh=mesh, data=data, io=io, banks=banks, history=banks.history)
