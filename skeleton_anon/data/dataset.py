"""The in-memory dataset and the generic `.npz` file (DESIGN section 1), validated key by key.

Every reader converts to `SkeletonDataset`; every stage (training, evaluation, export) consumes it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from typing import Any

import numpy as np
from absl import logging

from skeleton_anon.data import npz_mmap
from skeleton_anon.data.rows import Rows
from skeleton_anon.data.layouts import Layout, get_layout
from skeleton_anon.errors import DataError, OutputExistsError

PRIVACY_TARGETS = ('subject', 'gender')
# Coordinate channels: 3D positions, or image-plane keypoints (x right, y down).
CHANNELS = (3, 2)
# Optional per-sample recording conditions (an additive extension of DESIGN section 1).
RECORDING_KEYS = ('camera', 'setup', 'replication')


@dataclasses.dataclass
class SkeletonDataset:
  """Skeleton sequences with labels, channels last.

  x: float32 [N, M, T, V, C], C = 3 (3D) or 2 (image-plane keypoints); absent persons and
  padded frames are exactly 0.
  score: optional float32 [N, M, T, V] in [0, 1], a pose estimator's per-joint confidence
  (pyskl's `keypoint_score`); 0 marks an invisible joint. Losses weight by it; anonymizers pass
  it through unchanged.
  img_shape: optional int32 [N, 2], each sample's video frame size (height, width) in pixels,
  as pyskl annotations carry it; the 'image' normalisation centres and scales by it.
  lengths: int32 [N] valid frames per sample. action, subject: int32 [N], 0-based.
  gender: int32 [N] 0/1/-1 or None. split: int8 [N] 0 train / 1 test, or None.
  names: str [N] or None. layout: registered name or 'custom' (then `edges` is set).
  camera, setup, replication: optional int32 [N] >= 0, as parsed from NTU/ETRI sample names
  (1-based like the names); the leakage-safe and cross-view splits read them.
  meta: free-form provenance (source format, camera/setup arrays parsed from names, ...); it is
  not written to the generic file except the keys listed in `EXTRA_KEYS`.
  """
  x: np.ndarray
  lengths: np.ndarray
  action: np.ndarray
  subject: np.ndarray
  layout: str = 'ntu25'
  gender: np.ndarray | None = None
  split: np.ndarray | None = None
  names: np.ndarray | None = None
  edges: np.ndarray | None = None
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)
  camera: np.ndarray | None = None
  setup: np.ndarray | None = None
  replication: np.ndarray | None = None
  score: np.ndarray | None = None
  img_shape: np.ndarray | None = None

  @property
  def num_samples(self) -> int:
    return int(self.x.shape[0])

  @property
  def num_persons(self) -> int:
    return int(self.x.shape[1])

  @property
  def num_frames(self) -> int:
    return int(self.x.shape[2])

  @property
  def num_joints(self) -> int:
    return int(self.x.shape[3])

  @property
  def num_channels(self) -> int:
    """3 for 3D coordinates, 2 for image-plane keypoints."""
    return int(self.x.shape[4])

  def get_layout(self) -> Layout:
    return get_layout(self.layout, edges=self.edges, num_joints=self.num_joints)

  def privacy_labels(self, target: str) -> np.ndarray:
    """The private label z for `target` in {'subject', 'gender'}."""
    if target == 'subject':
      return self.subject
    if target == 'gender':
      if self.gender is None:
        raise DataError(self.meta.get('path'), "privacy_target 'gender' needs a 'gender' array",
                        key='gender')
      return self.gender
    raise DataError(self.meta.get('path'),
                    f'unknown privacy_target {target!r}; use one of {PRIVACY_TARGETS}')

  def subset(self, index, *, view: bool = False) -> 'SkeletonDataset':
    """Samples at `index` (a boolean mask or integer indices); arrays are copied.

    view=True: x (and score) become `data.rows.Rows` of this dataset's, the selected rows read
    when asked (a split of a memory-mapped file stays on disk); the labels are copied.
    """
    def take(a):
      return None if a is None else a[index]
    x, score = self.x[index] if not view else Rows(self.x, index), take(self.score)
    if view and self.score is not None:
      score = Rows(self.score, index)
    return dataclasses.replace(
        self, x=x, lengths=self.lengths[index], action=self.action[index],
        subject=self.subject[index], gender=take(self.gender), split=take(self.split),
        names=take(self.names), meta=dict(self.meta), camera=take(self.camera),
        setup=take(self.setup), replication=take(self.replication), score=score,
        img_shape=take(self.img_shape))

  def with_x(self, x: np.ndarray) -> 'SkeletonDataset':
    """Same labels, new coordinates (e.g. anonymized)."""
    return dataclasses.replace(self, x=x, meta=dict(self.meta))


def _check(path, ok: bool, problem: str, key: str | None = None, sample: int | None = None,
           names=None):
  if not ok:
    name = None if names is None or sample is None else str(names[sample])
    raise DataError(path, problem, key=key, sample=sample, name=name)


def _first_bad(mask: np.ndarray) -> int:
  return int(np.flatnonzero(mask)[0])


def validate(ds: SkeletonDataset, path=None) -> SkeletonDataset:
  """Checks every array against DESIGN section 1; raises DataError naming file, key, sample."""
  x = ds.x
  _check(path, isinstance(x, (np.ndarray, Rows)) and x.dtype == np.float32,
         f'x must be float32, got {getattr(x, "dtype", type(x).__name__)}', 'x')
  _check(path, x.ndim == 5 and x.shape[-1] in CHANNELS,
         f'x must have shape [N, M, T, V, 3] (3D) or [N, M, T, V, 2] (2D keypoints), got '
         f'{list(x.shape)}', 'x')
  n, _, t, v, _ = x.shape
  _check(path, n > 0, 'x holds no samples', 'x')
  names = ds.names if ds.names is not None and len(ds.names) == n else None

  def int_labels(key, arr, dtype, lo=0, hi=None, allow=()):
    _check(path, arr is not None, f'missing required key {key!r}', key)
    arr = np.asarray(arr)
    _check(path, np.issubdtype(arr.dtype, np.integer),
           f'{key} must be integers ({np.dtype(dtype).name}), got {arr.dtype}', key)
    _check(path, arr.shape == (n,), f'{key} must have shape [{n}] (one per sample), '
           f'got {list(arr.shape)}', key)
    bad = (arr < lo) & ~np.isin(arr, allow)
    if hi is not None:
      bad |= arr > hi
    if bad.any():
      i = _first_bad(bad)
      rng = f'{lo}..{hi}' if hi is not None else f'>= {lo}'
      extra = f' or {list(allow)}' if allow else ''
      _check(path, False, f'{key} = {arr[i]} is outside {rng}{extra}', key, i, names)
    return arr.astype(dtype)

  lengths = int_labels('lengths', ds.lengths, np.int32, 1, t)
  action = int_labels('action', ds.action, np.int32)
  subject = int_labels('subject', ds.subject, np.int32)
  gender = None if ds.gender is None else int_labels('gender', ds.gender, np.int32, 0, 1, (-1,))
  split = None if ds.split is None else int_labels('split', ds.split, np.int8, 0, 1)
  recording = {key: None if getattr(ds, key) is None else
               int_labels(key, getattr(ds, key), np.int32) for key in RECORDING_KEYS}
  if ds.names is not None:
    _check(path, len(ds.names) == n, f'names must have {n} entries, got {len(ds.names)}',
           'names')
  layout = get_layout(str(ds.layout), edges=ds.edges, num_joints=v, path=path)
  score = None if ds.score is None else _checked_score(ds.score, x.shape, path, names)
  img_shape = None if ds.img_shape is None else _checked_img_shape(ds.img_shape, n, path, names)
  _check_coordinates(x, lengths, path, names)
  return dataclasses.replace(
      ds, lengths=lengths, action=action, subject=subject, gender=gender, split=split,
      **recording, layout=layout.name, edges=layout.edges if layout.name == 'custom' else None,
      score=score, img_shape=img_shape)


# Samples checked at once: bounds validation's temporaries (x may be a memory map of 10 GB).
_CHUNK = 512


def _check_coordinates(x: np.ndarray, lengths: np.ndarray, path, names) -> None:
  """Finite coordinates, zero padded frames (a model reads them as "no data", and a non-zero pad
  is a sign that `lengths` is wrong) and a body in every sample, checked chunk by chunk."""
  frame_ids = np.arange(x.shape[2])
  for lo in range(0, x.shape[0], _CHUNK):
    chunk = np.asarray(x[lo:lo + _CHUNK])
    flat = chunk.reshape(len(chunk), -1)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
      _check(path, False, 'coordinates contain NaN or inf', 'x', lo + _first_bad(~finite), names)
    pad = frame_ids[None, :] >= lengths[lo:lo + len(chunk), None]            # [n, T]
    pad_nonzero = (chunk != 0).any(axis=(1, 3, 4)) & pad
    if pad_nonzero.any():
      i = lo + _first_bad(pad_nonzero.any(axis=1))
      _check(path, False, f'frames beyond lengths={lengths[i]} are not zero', 'x', i, names)
    empty = ~(flat != 0).any(axis=1)
    if empty.any():
      _check(path, False, 'all coordinates are zero (no body)', 'x', lo + _first_bad(empty),
             names)


def _checked_img_shape(img_shape, n: int, path, names) -> np.ndarray:
  """Per-sample (height, width) as int32 [N, 2], both >= 1; DataError naming the sample."""
  arr = np.asarray(img_shape)
  _check(path, arr.shape == (n, 2), f'img_shape must have shape [{n}, 2] (height, width per '
         f'sample), got {list(arr.shape)}', 'img_shape')
  _check(path, np.issubdtype(arr.dtype, np.integer) or
         (arr.dtype.kind == 'f' and bool(np.all(arr == np.round(arr)))),
         f'img_shape must be integers, got {arr.dtype}', 'img_shape')
  small = (arr < 1).any(axis=1)
  if small.any():
    i = _first_bad(small)
    _check(path, False, f'img_shape = {arr[i].tolist()} is not a positive (height, width)',
           'img_shape', i, names)
  return arr.astype(np.int32)


def _checked_score(score, x_shape, path, names) -> np.ndarray:
  """The confidence array as float32, or DataError on a wrong shape, non-finite or outside [0, 1].

  Checked chunk by chunk (a memory map or Rows of one is not read whole); non-finite values
  are looked for in every sample before the range is.
  """
  _check(path, isinstance(score, (np.ndarray, Rows)) and score.dtype.kind == 'f',
         f'score must be a float array, got {getattr(score, "dtype", type(score).__name__)}',
         'score')
  _check(path, score.shape == tuple(x_shape[:-1]),
         f'score must have shape {list(x_shape[:-1])} (x without its coordinate axis), got '
         f'{list(score.shape)}', 'score')
  n = x_shape[0]
  for lo in range(0, n, _CHUNK):
    flat = np.asarray(score[lo:lo + _CHUNK]).reshape(min(_CHUNK, n - lo), -1)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
      _check(path, False, 'score contains NaN or inf', 'score', lo + _first_bad(bad), names)
  for lo in range(0, n, _CHUNK):
    flat = np.asarray(score[lo:lo + _CHUNK]).reshape(min(_CHUNK, n - lo), -1)
    outside = ((flat < 0) | (flat > 1)).any(axis=1)
    if outside.any():
      i = _first_bad(outside)
      row = flat[i]
      value = row[(row < 0) | (row > 1)][0]
      _check(path, False, f'score = {value:g} is outside [0, 1]', 'score', lo + i, names)
  if isinstance(score, Rows) or score.dtype == np.float32:
    return score
  return score.astype(np.float32)


# Optional string scalar: how `prepare` normalised the coordinates ('none'; 'agcn', 'pyskl' for 3D;
# 'image', 'skeleton' for 2D keypoints: preprocess.METHODS).
# Kept in meta['normalize']; an anonymizer refuses data normalised otherwise than its own.
NORMALIZE_KEY = 'normalize'
_KNOWN_KEYS = {'x', 'lengths', 'action', 'subject', 'gender', 'split', 'names', 'layout',
               'edges', 'score', 'img_shape', NORMALIZE_KEY, *RECORDING_KEYS}


def load_npz(path, *, mmap: bool = False) -> SkeletonDataset:
  """Reads and validates a generic dataset file. Never unpickles (allow_pickle=False).

  mmap: x becomes a read-only memory map of the file (data/npz_mmap.py) and costs no RAM; a
  file whose x cannot be mapped (compressed) is read into memory and meta['mmap_refused'] says
  why (logged once, one line).
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise DataError(path, 'file does not exist')
  with open(path, 'rb') as f:
    head = f.read(4)
  if head != b'PK\x03\x04':
    # np.load would take any other bytes for a pickle and blame "object arrays".
    what = 'a .npy array' if head == b'\x93NUM' else 'not a zip archive'
    raise DataError(path, f'not an .npz file ({what}); expected the generic dataset file '
                    '(README "The dataset file")')
  try:
    with np.load(path, allow_pickle=False) as f:
      # Members are read lazily: with mmap, x is mapped below instead of read here.
      arrays = {k: f[k] for k in f.files if not (mmap and k == 'x')}
      refused = None
      if mmap and 'x' in f.files:
        try:
          arrays['x'] = npz_mmap.map_npz_member(path, 'x')
        except npz_mmap.NotMappable as e:
          refused = str(e)
          logging.warning('%s: x read into memory, not memory-mapped: %s', path, refused)
          arrays['x'] = f['x']
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise DataError(path, f'not a readable .npz file ({e})') from None
  except ValueError as e:
    raise DataError(path, f'holds object arrays, which are refused ({e})') from None
  for key in ('x', 'lengths', 'action', 'subject', 'layout'):
    _check(path, key in arrays, f'missing required key {key!r}; present: {sorted(arrays)}',
           key)
  layout = arrays['layout']
  _check(path, layout.ndim == 0 and layout.dtype.kind in 'US',
         f'layout must be a string scalar, got {layout.dtype} {list(layout.shape)}', 'layout')
  names = arrays.get('names')
  if names is not None:
    _check(path, names.dtype.kind in 'US', f'names must be strings, got {names.dtype}', 'names')
  normalize = arrays.get(NORMALIZE_KEY)
  if normalize is not None:
    _check(path, normalize.ndim == 0 and normalize.dtype.kind in 'US',
           f'normalize must be a string scalar, got {normalize.dtype} {list(normalize.shape)}',
           NORMALIZE_KEY)
  x = arrays['x']
  ds = SkeletonDataset(
      x=x, lengths=arrays['lengths'], action=arrays['action'], subject=arrays['subject'],
      layout=str(layout), gender=arrays.get('gender'), split=arrays.get('split'),
      names=None if names is None else names.astype(str), edges=arrays.get('edges'),
      camera=arrays.get('camera'), setup=arrays.get('setup'),
      replication=arrays.get('replication'), score=arrays.get('score'),
      img_shape=arrays.get('img_shape'),
      meta={'path': path, 'source': 'npz',
            'extra_keys': sorted(set(arrays) - _KNOWN_KEYS),
            'normalize': None if normalize is None else str(normalize),
            'mmap_refused': refused})
  return validate(ds, path)


def atomic_write(path, write_fn, *, overwrite: bool = False, suffix: str = '') -> None:
  """Calls write_fn(tmp_path) and renames tmp onto `path`: no half-written output, ever."""
  path = os.fspath(path)
  if os.path.exists(path) and not overwrite:
    raise OutputExistsError(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix + '.tmp',
                             dir=directory)
  os.close(fd)
  try:
    write_fn(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_npz(ds: SkeletonDataset, path, *, overwrite: bool = False,
             compress: bool = False) -> None:
  """Validates, then writes the generic file atomically."""
  ds = validate(ds, path)
  arrays = {'x': ds.x, 'lengths': ds.lengths, 'action': ds.action, 'subject': ds.subject,
            'layout': np.asarray(ds.layout)}
  if ds.gender is not None:
    arrays['gender'] = ds.gender
  if ds.split is not None:
    arrays['split'] = ds.split
  if ds.names is not None:
    arrays['names'] = np.asarray(ds.names).astype(str)
  if ds.edges is not None:
    arrays['edges'] = np.asarray(ds.edges, np.int32)
  for key in RECORDING_KEYS:
    if getattr(ds, key) is not None:
      arrays[key] = getattr(ds, key)
  if ds.score is not None:
    arrays['score'] = ds.score
  if ds.img_shape is not None:
    arrays['img_shape'] = ds.img_shape
  if ds.meta.get('normalize') is not None:
    arrays[NORMALIZE_KEY] = np.asarray(str(ds.meta['normalize']))

  def write(tmp):
    with open(tmp, 'wb') as f:
      (np.savez_compressed if compress else np.savez)(f, **arrays)

  atomic_write(path, write, overwrite=overwrite)
