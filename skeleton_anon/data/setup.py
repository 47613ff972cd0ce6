"""Turns config.data (a file or the synthetic generator) into train/test SkeletonDatasets and
their labels: the data side of a pipeline run, and of anything else that reads a config."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from absl import logging

from skeleton_anon.data import formats, pyskl, rows as rows_lib
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
  # Samples whose privacy label is unknown (-1): not trained or scored on, but anonymized and
  # exported with the rest (meta['source_index'] of every part says where each sample came from).
  unlabelled: SkeletonDataset | None = None
  # The split that was used: 'file' (the dataset's own `split`, which wins over the config's
  # data.split_rule) or the rule that made it.
  split_used: str = 'file'


def input_files(cfg) -> list[str]:
  """The files config.data reads: [npz], [MS-G3D npy, its label pickle], [pyskl pickle], or []
  (synthetic)."""
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
    if pyskl.is_pyskl_path(cfg.path):
      # A pyskl / mmaction2 annotation pickle, normalised here; export then also writes one.
      return _load_pyskl(cfg), cfg.path
    # Mapped, not read: the splits below are index arrays over the map (data/rows.py).
    return load_npz(cfg.path, mmap=True), cfg.path
  from skeleton_anon.data import preprocess, synthetic
  knobs = cfg.synthetic.to_dict()
  try:
    ds = synthetic.make_synthetic(**knobs)
  except TypeError as e:
    raise ConfigError(f'data.synthetic: {e}') from None
  # Files come normalised by `prepare`; generated data gets the same treatment here.
  return normalized(ds, cfg.synthetic_normalize), 'synthetic'


def normalized(ds: SkeletonDataset, method: str) -> SkeletonDataset:
  """ds normalised by `method` ('auto': preprocess.default_method), scores moved along; the 2D
  methods' per-sample offset and scale go to meta['denormalize'] (input order), which the
  pyskl export maps the anonymized keypoints back with."""
  from skeleton_anon.data import preprocess
  if method == 'auto':
    method = preprocess.default_method(ds.num_channels, ds.img_shape is not None)
  out = preprocess.normalize(ds.x, ds.lengths, ds.get_layout(), method, score=ds.score,
                             img_shape=ds.img_shape, path=ds.meta.get('path'))
  ds = dataclasses.replace(ds, x=out.x, lengths=out.lengths, score=out.score,
                           meta=dict(ds.meta, normalize=method))
  if out.offset is not None:
    ds.meta['denormalize'] = {'offset': out.offset, 'scale': out.scale}
  return ds


def _load_pyskl(cfg) -> SkeletonDataset:
  """config.data.path as a pyskl pickle: data.pyskl_split picks its split lists ('' = none, the
  config's split_rule applies), data.pyskl_normalize its normalisation, data.max_frames T."""
  from skeleton_anon.data import collect
  max_frames = int(cfg.max_frames)
  ds = pyskl.read_pyskl(cfg.path, split=cfg.get('pyskl_split', '') or None,
                          max_frames=max_frames if max_frames > 0 else None)
  try:
    return normalized(ds, cfg.get('pyskl_normalize', 'auto'))
  finally:
    collect.release(ds)       # the normalised arrays are copies


def _crop(ds: SkeletonDataset, max_frames: int) -> SkeletonDataset:
  if max_frames <= 0 or ds.num_frames <= max_frames:
    return ds
  # A memory map is cropped as a view of the file (its splits then read the first frames only).
  crop = (ds.x[:, :, :max_frames] if rows_lib.is_mapped(ds.x)
          else np.ascontiguousarray(ds.x[:, :, :max_frames]))
  ds = dataclasses.replace(ds, x=crop,
                           lengths=np.minimum(ds.lengths, max_frames).astype(np.int32),
                           score=None if ds.score is None else
                           np.ascontiguousarray(ds.score[:, :, :max_frames]))
  return ds


def _with_source_index(ds: SkeletonDataset, mask: np.ndarray) -> SkeletonDataset:
  """ds.subset(mask), its meta['source_index'] (positions in the input file) subset with it.

  A memory-mapped x stays on disk: the part's x is `data.rows.Rows`, its rows of the map.
  """
  part = ds.subset(mask, view=rows_lib.is_mapped(ds.x))
  part.meta['source_index'] = np.asarray(ds.meta['source_index'])[mask]
  return part


def prepare_data(cfg) -> PreparedData:
  """config.data -> PreparedData. Split from the file, else `cfg.split_rule`."""
  ds, source = _load(cfg)
  ds = _crop(ds, int(cfg.max_frames))
  ds.meta['source_index'] = np.arange(ds.num_samples)
  privacy = ds.privacy_labels(cfg.privacy_target)
  known = privacy >= 0
  unlabelled = None
  if not known.all():
    logging.info('%d samples with unknown %s: not used for training or scoring, exported '
                 'anonymized with label -1', int((~known).sum()), cfg.privacy_target)
    unlabelled = _with_source_index(ds, ~known)
    ds, privacy = _with_source_index(ds, known), privacy[known]
  split = ds.split
  split_used = 'file'
  if split is None:
    split_used = str(cfg.split_rule)
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
      train=_with_source_index(ds, train_mask), test=_with_source_index(ds, test_mask),
      layout=ds.get_layout(), unlabelled=unlabelled, split_used=split_used,
      privacy_train=privacy[train_mask].astype(np.int32),
      privacy_test=privacy[test_mask].astype(np.int32),
      num_actions=int(ds.action.max()) + 1, num_privacy=int(privacy.max()) + 1, source=source,
      privacy_target=cfg.privacy_target)
