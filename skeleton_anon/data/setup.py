"""Turns config.data (a file or the synthetic generator) into train/test SkeletonDatasets and
their labels: the data side of a pipeline run, and of anything else that reads a config."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from skeleton_anon.data import formats
from skeleton_anon.data.dataset import SkeletonDataset, load_npz
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError, DataError


@dataclasses.dataclass
class PreparedData:
  """Train and test sets after the split, cropping and dropping samples without a privacy label.

  privacy_train, privacy_test: int32 privacy labels z (subject ids or gender); privacy_target:
  'subject' or 'gender'; num_actions, num_privacy: class counts; source: the path or 'synthetic'.
  """
  train: SkeletonDataset
  test: SkeletonDataset
  layout: Layout
  privacy_train: np.ndarray
  privacy_test: np.ndarray
  num_actions: int
  num_privacy: int
  source: str
  privacy_target: str = 'subject'


def input_files(cfg) -> list[str]:
  """The files config.data reads: [npz], [MS-G3D npy, its label pickle], or [] (synthetic)."""
  if not cfg.path:
    return []
  if cfg.path.lower().endswith('.npy'):
    return [cfg.path, cfg.get('label_path', '') or formats.msg3d_label_path(cfg.path)]
  return [cfg.path]


def _load(cfg) -> tuple[SkeletonDataset, str]:
  if cfg.path:
    if not os.path.exists(cfg.path):
      raise ConfigError(f'{cfg.path}: dataset file not found; make it with '
                        f'`{cfg.prepare_hint}` or point --config.data.path at an existing npz')
    if cfg.path.lower().endswith('.npy'):
      # An MS-G3D / 2s-AGCN array and its (names, labels) pickle; export then also writes that
      # format, so the anonymized data drops into the same PyTorch pipeline.
      return formats.read_msg3d(*input_files(cfg)), cfg.path
    return load_npz(cfg.path), cfg.path
  from skeleton_anon.data import preprocess, synthetic
  knobs = cfg.synthetic.to_dict()
  try:
    ds = synthetic.make_synthetic(**knobs)
  except TypeError as e:
    raise ConfigError(f'data.synthetic: {e}') from None
  # Files come normalised by `prepare`; generated data gets the same treatment here.
  x, lengths = preprocess.pre_normalize(ds.x, ds.lengths, ds.get_layout(),
                                        cfg.synthetic_normalize)
  return dataclasses.replace(ds, x=x, lengths=lengths), 'synthetic'


def _crop(ds: SkeletonDataset, max_frames: int) -> SkeletonDataset:
  if max_frames <= 0 or ds.num_frames <= max_frames:
    return ds
  ds = dataclasses.replace(ds, x=np.ascontiguousarray(ds.x[:, :, :max_frames]),
                           lengths=np.minimum(ds.lengths, max_frames).astype(np.int32))
  return ds


def prepare_data(cfg) -> PreparedData:
  """config.data -> PreparedData. Split from the file, else `cfg.split_rule`."""
  ds, source = _load(cfg)
  ds = _crop(ds, int(cfg.max_frames))
  privacy = ds.privacy_labels(cfg.privacy_target)
  known = privacy >= 0
  if not known.all():
    logging.info('dropping %d samples with unknown %s', int((~known).sum()), cfg.privacy_target)
    ds, privacy = ds.subset(known), privacy[known]
  split = ds.split
  if split is None:
    from skeleton_anon.data import splits
    split = splits.make_split(ds, cfg.split_rule, privacy_target=cfg.privacy_target,
                              seed=int(cfg.get('split_seed', 0)),
                              test_fraction=float(cfg.get('test_fraction', 0.2)))
  split = np.asarray(split)
  train_mask, test_mask = split == 0, split == 1
  if not train_mask.any() or not test_mask.any():
    raise DataError(source, f'the split leaves {int(train_mask.sum())} training and '
                    f'{int(test_mask.sum())} test samples; both must be non-empty', key='split')
  if cfg.privacy_target == 'subject':
    from skeleton_anon.data import splits
    splits.check_identity_split(privacy[train_mask], privacy[test_mask])
  return PreparedData(
      train=ds.subset(train_mask), test=ds.subset(test_mask), layout=ds.get_layout(),
      privacy_train=privacy[train_mask].astype(np.int32),
      privacy_test=privacy[test_mask].astype(np.int32),
      num_actions=int(ds.action.max()) + 1, num_privacy=int(privacy.max()) + 1, source=source,
      privacy_target=cfg.privacy_target)
