"""Bounded memory (issue 13): a run on a memory-mapped npz keeps its splits on disk (Rows of the
map), streams retargeting and anonymization in chunks through scratch memory maps, and exports,
sample for sample, exactly what the in-memory path gives."""

import json
import os
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from skeleton_anon.data import setup as data_setup, transforms
from skeleton_anon.data.dataset import SkeletonDataset, load_npz, save_npz
from skeleton_anon.data.rows import Rows, is_mapped
from skeleton_anon.models.registry import CLASSIFIERS, register_classifier

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Tiny(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    n, m, t, v, c = x.shape
    h = nn.relu(nn.Dense(8)(x.reshape(n, m, t, v * c)))
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(jnp.mean(h, axis=(1, 2)))
    return nn.Dense(self.num_classes)(h)


if 'bounded_tiny' not in CLASSIFIERS:
  register_classifier('bounded_tiny')(
      lambda *, num_classes, layout, num_persons: _Tiny(num_classes))


def _config(path):
  sys.path.insert(0, os.path.join(REPO, 'configs'))
  try:
    import default  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  c = default.get_config()
  c.data.path = str(path)
  c.data.privacy_target = 'gender'
  for task in ('action', 'privacy'):
    c.classifiers[task].arch, c.classifiers[task].seeds = 'bounded_tiny', [0]
    c.pretrain[task].epochs, c.pretrain[task].batch_size, c.pretrain[task].milestones = 1, 8, []
    c.evaluate.holdout_seeds[task], c.evaluate.holdout_archs[task] = [], []
  c.evaluate.retrained.action, c.evaluate.retrained.privacy = [], ['bounded_tiny']
  c.anonymizer.retarget_first = True             # retargeting streamed in training and export
  c.anonymizer.knobs.num_blocks = 1
  c.anonymize.epochs, c.anonymize.batch_size, c.anonymize.milestones = 1, 8, []
  c.evaluate.noise_sigmas = [0.05]
  c.evaluate.batch_size = 8
  c.evaluate.attacks = 'body_nn'
  c.evaluate.render_samples = [0]
  c.evaluate.gif = False
  return c


def _skeletons(n, m, t, seed):
  """Poses from per-sample bone lengths and per-frame directions, padded frames zero, the
  second person present in every fourth sample."""
  from skeleton_anon.data.layouts import get_layout
  layout = get_layout('ntu25')
  rng = np.random.default_rng(seed)
  bones = rng.uniform(0.05, 0.4, size=(n, layout.num_joints)).astype(np.float32)
  direction = rng.standard_normal((n, m, t, layout.num_joints, 3)).astype(np.float32)
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  x = np.zeros((n, m, t, layout.num_joints, 3), np.float32)
  x[..., layout.root, :] = rng.uniform(-1, 1, size=(n, m, t, 3))
  for j in layout.topological_order:
    if j != layout.root:
      x[..., j, :] = (x[..., layout.parents[j], :]
                      + direction[..., j, :] * bones[:, None, None, j, None])
  lengths = rng.integers(t // 2, t + 1, size=n).astype(np.int32)
  x *= (np.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
  x[np.arange(n) % 4 != 1, 1:] = 0
  return x, lengths


def _dataset(n=40):
  x, lengths = _skeletons(n, 2, 10, seed=11)
  gender = (np.arange(n) % 2).astype(np.int32)
  x = x * np.where(gender == 1, 1.3, 1.0).astype(np.float32)[:, None, None, None, None]
  gender[[5, 17]] = -1                         # unknown: exported, never trained or scored
  return SkeletonDataset(
      x=x, lengths=lengths, action=(np.arange(n) % 3).astype(np.int32),
      subject=(np.arange(n) % 8).astype(np.int32), gender=gender, layout='ntu25',
      split=(np.arange(n) % 3 == 0).astype(np.int8),
      names=np.array([f'S001C001P{i % 8 + 1:03d}R001A{i:03d}' for i in range(n)]))


@pytest.mark.slow
def test_mapped_run_exports_exactly_what_the_in_memory_path_gives(tmp_path, monkeypatch):
  from skeleton_anon import pipeline
  from skeleton_anon.pipeline import anonymized, anonymizer
  ds = _dataset()
  path = tmp_path / 'data.npz'
  save_npz(ds, path)

  # Bounded: the input mapped, splits as Rows of the map, chunks of 8 samples everywhere
  # (many chunks even on this small file; chunks end on batch boundaries, so values are exact).
  with monkeypatch.context() as patch:
    patch.setattr(anonymizer, 'CHUNK_SAMPLES', 8)
    patch.setattr(transforms, 'CHUNK', 8)
    bounded = pipeline.run(_config(path), str(tmp_path / 'bounded'))
  for part in (bounded.data.train, bounded.data.test, bounded.data.unlabelled):
    assert isinstance(part.x, Rows) and is_mapped(part.x)
  assert anonymized.is_bounded(bounded)
  splits = bounded.anonymized[1]
  assert isinstance(splits['train'].base, np.memmap)           # the scratch copy, on disk
  assert not os.path.exists(anonymized.scratch_dir(bounded.workdir))   # removed after export

  # The in-memory path: the file read whole, splits copied, everything in RAM.
  monkeypatch.setattr(data_setup, 'load_npz', lambda p, mmap=False: load_npz(p))
  memory = pipeline.run(_config(path), str(tmp_path / 'memory'))
  assert not isinstance(memory.data.train.x, Rows) and not anonymized.is_bounded(memory)

  got = load_npz(tmp_path / 'bounded' / 'export' / 'anonymized.npz')
  want = load_npz(tmp_path / 'memory' / 'export' / 'anonymized.npz')
  assert got.num_samples == ds.num_samples
  np.testing.assert_array_equal(got.x, want.x)
  for key in ('lengths', 'action', 'subject', 'gender', 'split', 'names'):
    np.testing.assert_array_equal(getattr(got, key), getattr(want, key))
  # ... and that is the trained anonymizer applied to each in-memory split (retargeting first),
  # put back in the input's order.
  for part, name in ((memory.data.train, 'train'), (memory.data.test, 'test'),
                     (memory.data.unlabelled, 'unlabelled')):
    rows = part.meta['source_index']
    np.testing.assert_array_equal(got.x[rows], memory.anonymize(part.x, part.lengths), name)
  # Evaluation read the same numbers through the bounded path.
  reports = [json.load(open(tmp_path / d / 'report.json')) for d in ('bounded', 'memory')]
  assert reports[0]['evaluations'] == reports[1]['evaluations']
  for key in ('recon_rmse', 'fidelity', 'utility', 'attacks'):
    drop = lambda d: {k: v for k, v in d.items() if k != 'timing'} if isinstance(d, dict) else d
    assert drop(reports[0][key]) == drop(reports[1][key]), key
