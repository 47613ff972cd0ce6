"""The staged run: pretrain -> anonymize -> evaluate -> export, each resumable, and its `Run` context.

`run(config, workdir)` is what `python -m skeleton_anon.main` calls. Every stage checkpoints under
workdir/checkpoints/<name> and writes workdir/stages/<name>.json when it finishes; a rerun skips
finished stages (and says so) and resumes an unfinished one from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.data.layouts import Layout
from skeleton_anon.evaluate import baselines
from skeleton_anon.models import build_classifier
from skeleton_anon.errors import ConfigError
from skeleton_anon.train import parallel, pretrain, stages, steps
from skeleton_anon.train.checkpoint import has_checkpoint
from skeleton_anon.train.data_setup import prepare_data
from skeleton_anon.train.pretrain import Bank
from skeleton_anon.train.workdir import StageMarkers, check_config

TASKS = ('action', 'privacy')


@dataclasses.dataclass
class Anonymizer:
  """The trained anonymizer: x -> f(R(x)), x's shape.

  f is `model.apply(variables, x, lengths)`. R is bone-length retargeting to `retarget_lengths`
  along `layout` when the run set anonymizer.retarget_first (the network was trained on R(x),
  so R must come first wherever it is applied), else the identity.
  """
  arch: str
  model: Any
  variables: dict
  step: int = 0
  retarget_lengths: np.ndarray | None = None
  layout: Layout | None = None

  def apply(self, x, lengths, *, mesh: Mesh, batch_size: int = 64) -> np.ndarray:
    """f(R(x)) for all of x in batches, float32 [N, M, T, V, C]."""
    x, lengths = np.asarray(x, np.float32), np.asarray(lengths, np.int32)
    if self.retarget_lengths is not None:
      x = baselines.retarget(x, lengths, self.layout, self.retarget_lengths)
    return pretrain.apply_anonymizer(self.model, self.variables, x, lengths, mesh=mesh,
                                     batch_size=batch_size)


@dataclasses.dataclass
class Run:
  """Everything a stage needs; the evaluate and export stages receive it.

  config: the ml_collections ConfigDict of the run. workdir: its directory. mesh: the device mesh
  ('data' axis over all devices).
  train, test: SkeletonDatasets after the split, frame cropping (data.max_frames) and dropping
  samples whose privacy label is unknown (gender -1). layout: their joint Layout.
  privacy_train, privacy_test: int32 privacy labels z (subject ids or gender) of train and test.
  privacy_target: 'subject' or 'gender'. num_actions, num_privacy: class counts.
  data_source: the npz path, or 'synthetic'.
  banks: name -> Bank (see pretrain.Bank: arch, task, role, model, variables with a leading seed
    axis, seeds, num_classes, history). Names: 'action' and 'privacy' (role 'trained_against', the
    classifiers the anonymizer was optimised against; for the adversarial algorithm 'privacy' holds
    the adversary's *starting* weights and 'adversary' its final ones), 'action_holdout_seed',
    'privacy_holdout_seed' (role 'holdout_seed'), 'action_holdout_arch_<arch>',
    'privacy_holdout_arch_<arch>' (role 'holdout_arch'). Retrained attackers are not pretrained:
    the evaluator makes them with `train_bank`.
  anonymizer: the trained Anonymizer (None before the anonymize stage).
  history: stage name -> list of per-epoch metric dicts ({'epoch', 'step', 'loss', ...}), e.g.
    history['anonymize'] has loss, action_ce, privacy_entropy, recon_mse, action_accuracy,
    privacy_accuracy (and adversary_loss, adversary_accuracy when adversarial).
  timing: stage name -> seconds spent in this process (0 for a skipped stage).
  writer: a tensorboardX SummaryWriter on workdir/tb (None on processes other than 0).
  """
  config: Any
  workdir: str
  mesh: Mesh
  train: SkeletonDataset
  test: SkeletonDataset
  layout: Layout
  privacy_train: np.ndarray
  privacy_test: np.ndarray
  privacy_target: str
  num_actions: int
  num_privacy: int
  data_source: str
  banks: dict[str, Bank] = dataclasses.field(default_factory=dict)
  anonymizer: Anonymizer | None = None
  history: dict[str, list] = dataclasses.field(default_factory=dict)
  timing: dict[str, float] = dataclasses.field(default_factory=dict)
  writer: Any = None

  # ------------------------------------------------------------ helpers

  @property
  def markers(self) -> StageMarkers:
    return StageMarkers(self.workdir)

  def checkpoint_dir(self, name: str) -> str:
    return f'{self.workdir}/checkpoints/{name}'

  def bank_form(self, *banks_variables: dict) -> str:
    """How members of these banks run inside a step (config.bank_form; see steps.BANK_FORMS)."""
    try:
      return steps.resolve_bank_form(str(self.config.get('bank_form', 'auto')), *banks_variables)
    except ValueError as e:
      raise ConfigError(f'bank_form: {e}') from None

  def stage_seed(self, name: str) -> int:
    """A seed for stage `name` derived from config.seed (stable across runs and processes)."""
    return (int(self.config.seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31)

  def classifier(self, arch: str, num_classes: int):
    """The Linen module of `arch` for this data, with config.model_knobs[arch] applied."""
    knobs = self.config.model_knobs.get(arch, None)
    knobs = knobs.to_dict() if knobs is not None else {}
    return build_classifier(arch, num_classes=num_classes, layout=self.layout,
                            num_persons=self.train.num_persons, **knobs)

  def train_bank(self, arch: str, labels_train, num_classes: int, seeds, x_train, lengths_train,
                 *, task: str | None = None, role: str = 'retrained',
                 name: str | None = None) -> Bank:
    """Trains len(seeds) classifiers of `arch` on (x_train, labels_train) from scratch.

    Training settings come from config.pretrain[task]; `task` defaults to 'privacy' when the labels
    are this run's privacy_train and to 'action' otherwise. The bank checkpoints under
    checkpoints/<name> (default: derived from arch, task, seeds and a digest of the labels), so an
    interrupted evaluation resumes instead of retraining. Returns a Bank with `role`.
    """
    labels_train = np.asarray(labels_train, np.int32)
    if task is None:
      same = (labels_train.shape == self.privacy_train.shape
              and np.array_equal(labels_train, self.privacy_train))
      task = 'privacy' if same else 'action'
    seeds = tuple(int(s) for s in seeds)
    if name is None:
      digest = zlib.crc32(labels_train.tobytes() + np.asarray(lengths_train).tobytes())
      name = f'{role}_{task}_{arch}_{"-".join(map(str, seeds))}_{digest:08x}'
    model = self.classifier(arch, num_classes)
    x_train = np.asarray(x_train, np.float32)
    directory = self.checkpoint_dir(name)
    variables = pretrain.init_bank(model, seeds, x_train, abstract=has_checkpoint(directory))
    arrays = {'x': x_train, 'lengths': np.asarray(lengths_train, np.int32), 'label': labels_train}
    result = pretrain.train_bank_variables(
        model, variables, arrays, self.config.pretrain[task], mesh=self.mesh,
        checkpoint_dir=directory, seed=self.stage_seed(name), name=name,
        writer=self.writer, stop_after_steps=int(self.config.debug.stop_after_steps),
        bank_form=self.bank_form(variables))
    stages.raise_if_stopped(result, name)
    self.history[name] = result.history
    return Bank(arch=arch, task=task, role=role, model=model,
                variables=result.states['bank'].variables, seeds=seeds,
                num_classes=num_classes, history=result.history)

  def predict_logits(self, bank: Bank, x, lengths) -> np.ndarray:
    """Eval-mode logits [S, N, K] of every member of `bank` on x [N, M, T, V, C]."""
    return pretrain.predict_logits(bank.model, bank.variables, np.asarray(x, np.float32),
                                   np.asarray(lengths, np.int32), mesh=self.mesh,
                                   batch_size=int(self.config.evaluate.batch_size),
                                   bank_form=self.bank_form(bank.variables))

  def anonymize(self, x, lengths) -> np.ndarray:
    """The trained anonymizer applied to x (retargeting first when configured), float32."""
    if self.anonymizer is None:
      raise RuntimeError('the anonymize stage has not run')
    return self.anonymizer.apply(x, lengths, mesh=self.mesh,
                                 batch_size=int(self.config.evaluate.batch_size))


def make_run(config, workdir: str, mesh: Mesh | None = None) -> Run:
  """Checks the workdir's config, loads the data and returns a Run with no stage done yet."""
  check_config(workdir, config)
  data = prepare_data(config.data)
  logging.info('data %s: %d train, %d test samples, %d actions, %d %s classes', data.source,
               data.train.num_samples, data.test.num_samples, data.num_actions,
               data.num_privacy, config.data.privacy_target)
  writer = None
  if jax.process_index() == 0:
    import tensorboardX
    writer = tensorboardX.SummaryWriter(f'{workdir}/tb')
  return Run(config=config, workdir=workdir, mesh=mesh or parallel.make_mesh(), train=data.train,
             test=data.test, layout=data.layout, privacy_train=data.privacy_train,
             privacy_test=data.privacy_test, privacy_target=config.data.privacy_target,
             num_actions=data.num_actions, num_privacy=data.num_privacy,
             data_source=data.source, writer=writer)


def run(config, workdir: str, *, mesh: Mesh | None = None) -> Run:
  """Runs (or resumes) every stage of the pipeline in `workdir`; returns the Run."""
  the_run = make_run(config, workdir, mesh)
  try:
    for name, stage in (('pretrain', stages.pretrain_stage), ('anonymize', stages.anonymize_stage),
                        ('evaluate', stages.evaluate_stage), ('export', stages.export_stage)):
      start = time.time()
      logging.info('stage %s', name)
      stage(the_run)
      the_run.timing[name] = time.time() - start
  finally:
    if the_run.writer is not None:
      the_run.writer.close()
  return the_run
