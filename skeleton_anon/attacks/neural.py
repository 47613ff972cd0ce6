"""Neural attackers, retrained from scratch on the audited data: a GCN and a non-graph network.

A fixed classifier trained on the original data underestimates what anonymized data leaks (the
anonymizer may have learnt to fool exactly it); an attacker retrained on the released data is
what a real adversary would use. Two families, so one inductive bias cannot hide a leak:
`stgcn` (graph convolution over the layout's bones, from the zoo) and `sgn` (models/sequence.py,
no bone graph). Each is one network (bank of one seed) trained with the project's own pretraining
loop, on the train split only; long sequences are subsampled in time to `max_frames` first.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import ml_collections
import numpy as np

ARCHS = ('stgcn', 'sgn')
# Small enough to train in minutes on CPU; an attacker, not a benchmark entry.
DEFAULT_KNOBS = {
    'stgcn': dict(base_channels=16, blocks_per_stage=(1, 1, 1), temporal_kernel=5, dropout=0.1),
    'sgn': dict(width=32, joint_layers=2, temporal_kernel=3, dropout=0.1),
}


@dataclasses.dataclass(frozen=True)
class NeuralSettings:
  """How the neural attackers train: epochs, batch, SGD, frames, and per-architecture knobs."""
  epochs: int = 30
  batch_size: int = 32
  lr: float = 0.05
  weight_decay: float = 5e-4
  max_frames: int = 64
  knobs: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_KNOBS))

  def training_config(self) -> ml_collections.ConfigDict:
    """configs/default.py's classifier_training keys: SGD, nesterov, steps at 60% and 85%."""
    return ml_collections.ConfigDict(dict(
        optimizer='sgd', epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
        weight_decay=self.weight_decay,
        milestones=[int(self.epochs * 0.6), int(self.epochs * 0.85)], gamma=0.1, momentum=0.9,
        nesterov=True, checkpoint_every=0))


def subsample_frames(x: np.ndarray, lengths: np.ndarray, max_frames: int):
  """Every s-th frame, s the smallest stride that fits T into max_frames (0: unchanged)."""
  t = x.shape[2]
  if max_frames <= 0 or t <= max_frames:
    return x, np.asarray(lengths)
  stride = -(-t // max_frames)
  return (np.ascontiguousarray(x[:, :, ::stride]),
          np.maximum(-(-np.asarray(lengths) // stride), 1).astype(np.int32))


def estimate_seconds(num_train: int, frames: int, joints: int, settings: NeuralSettings,
                     archs=ARCHS) -> float:
  """A rough wall-clock estimate for training `archs` (printed before `all` starts them).

  Calibrated on 2 CPU cores: ~2e-5 s per (sample x frame x joint) per epoch for these knob
  sizes, plus ~40 s of compilation per network; accelerators are much faster.
  """
  per_epoch = 2e-5 * num_train * min(frames, settings.max_frames or frames) * joints
  return float(len(archs) * (40.0 + settings.epochs * per_epoch))


def neural_scores(arch: str, train_x, train_lengths, train_y, test_x, test_lengths,
                  num_classes: int, *, layout, seed: int = 0, mesh=None, workdir=None,
                  settings: NeuralSettings | None = None) -> tuple[np.ndarray, dict]:
  """Trains `arch` on (train_x, train_y), returns (test logits [n_test, K], info).

  info: {'epochs', 'train_seconds', 'final_train_accuracy'}. Checkpoints go under
  `workdir/<arch>_<seed>` (so an interrupted audit resumes) or a temporary folder.
  """
  from skeleton_anon.models import sequence  # noqa: F401  (registers 'sgn')
  from skeleton_anon.models.registry import build_classifier
  from skeleton_anon.train import parallel, pretrain

  settings = settings or NeuralSettings()
  mesh = mesh if mesh is not None else parallel.make_mesh()
  train_x, train_lengths = subsample_frames(train_x, train_lengths, settings.max_frames)
  test_x, test_lengths = subsample_frames(test_x, test_lengths, settings.max_frames)
  model = build_classifier(arch, num_classes=int(num_classes), layout=layout,
                           num_persons=int(train_x.shape[1]), **settings.knobs.get(arch, {}))
  variables = pretrain.init_bank(model, [seed], train_x)
  arrays = {'x': train_x, 'lengths': np.asarray(train_lengths, np.int32),
            'label': np.asarray(train_y, np.int32)}
  start = time.time()
  with tempfile.TemporaryDirectory() as tmp:
    ckpt = os.path.join(workdir, f'{arch}_{seed}') if workdir else os.path.join(tmp, arch)
    result = pretrain.train_bank_variables(
        model, variables, arrays, settings.training_config(), mesh=mesh, checkpoint_dir=ckpt,
        seed=seed, name=f'attack_{arch}')
    trained = result.states['bank'].variables
    logits = pretrain.predict_logits(model, trained, test_x, test_lengths, mesh=mesh)[0]
  history = result.history[-1] if result.history else {}
  info = {'epochs': settings.epochs, 'train_seconds': round(time.time() - start, 2),
          'final_train_accuracy': _first_float(history, 'accuracy')}
  return np.asarray(logits, np.float32), info


def _first_float(history: dict, key: str):
  for k, v in history.items():
    if key in k:
      try:
        return float(np.mean(v))
      except (TypeError, ValueError):
        return None
  return None
