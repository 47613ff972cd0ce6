"""Applying a function to a dataset file batch by batch, with memory bounded by the batch.

NTU60 at T=300 is about 10 GB of coordinates: neither the input nor the output is ever held whole.
The input's `x` is read sequentially (from the npz's zip member, or a memory-mapped .npy), each
batch is validated and transformed, and written into a memory-mapped temporary `.npy`; the output
file is assembled from that and renamed onto its final name only when complete. The input is
opened read-only and never modified.

Formats: the generic `.npz` (all other members copied unchanged, so labels, names and layout
survive) and MS-G3D's `(N, 3, T, V, M)` `.npy` (its label pickle is untouched and still matches).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Callable, Iterator

import numpy as np

from skeleton_anon.data.dataset import (CHANNELS, RECORDING_KEYS, SkeletonDataset, atomic_write,
                                        validate)
from skeleton_anon.data.transforms import lengths_from_frames
from skeleton_anon.errors import DataError, OutputExistsError

# apply(x [B, M, T, V, C] float32, lengths [B] int32) -> x' of the same shape, or (x', lengths')
# when the outputs play for other durations (a prior's output_duration): the file's lengths
# are then rewritten.
ApplyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# check(x [B, M, T, V, C], layout name or None, edges=, normalize=) raises when the data does not
# fit the anonymizer (edges and normalize: the npz's own keys, None when it has none).
CheckFn = Callable[[np.ndarray, 'str | None'], None]


def _npy_header(f, path) -> tuple[tuple[int, ...], np.dtype]:
  """Reads an .npy header from an open stream; refuses Fortran order and object dtypes."""
  try:
    major, _ = np.lib.format.read_magic(f)
    reader = (np.lib.format.read_array_header_1_0 if major == 1
              else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = reader(f)
  except ValueError as e:
    raise DataError(path, f'not a valid .npy array ({e})', key='x') from None
  if fortran or dtype.hasobject:
    raise DataError(path, 'x must be a C-ordered numeric array', key='x')
  return shape, dtype


class NpzStream:
  """A generic npz whose small members are loaded and whose `x` is read in row batches."""

  def __init__(self, path):
    self.path = os.fspath(path)
    if not os.path.exists(self.path):
      raise DataError(self.path, 'file does not exist')
    try:
      self._zip = zipfile.ZipFile(self.path)
    except (zipfile.BadZipFile, OSError) as e:
      raise DataError(self.path, f'not a readable .npz file ({e})') from None
    members = {os.path.splitext(n)[0]: n for n in self._zip.namelist() if n.endswith('.npy')}
    for key in ('x', 'lengths', 'action', 'subject', 'layout'):
      if key not in members:
        raise DataError(self.path, f'missing required key {key!r}; present: {sorted(members)}',
                        key=key)
    self.members = members
    self.small = {}
    for key, name in members.items():
      if key == 'x':
        continue
      try:
        with self._zip.open(name) as f:
          self.small[key] = np.lib.format.read_array(f, allow_pickle=False)
      except ValueError as e:
        raise DataError(self.path, f'holds an object or unreadable array ({e})', key=key) from None
    with self._zip.open(members['x']) as f:
      self.x_shape, self.x_dtype = _npy_header(f, self.path)
    if len(self.x_shape) != 5 or self.x_shape[-1] not in CHANNELS:
      raise DataError(self.path, f'x must have shape [N, M, T, V, 3] or [N, M, T, V, 2], got '
                      f'{list(self.x_shape)}', key='x')

  def close(self) -> None:
    self._zip.close()

  def copy_members(self, zout: zipfile.ZipFile, *, skip: tuple[str, ...] = ('x',)) -> None:
    """Copies every member but those in `skip` byte for byte into another archive."""
    for key, name in self.members.items():
      if key not in skip:
        zout.writestr(self._zip.getinfo(name), self._zip.read(name))

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def dataset_of(self, x: np.ndarray, lo: int) -> SkeletonDataset:
    """The rows [lo, lo + len(x)) as a dataset, every label sliced to match."""
    hi = lo + len(x)
    def part(key):
      value = self.small.get(key)
      return None if value is None else value[lo:hi]
    layout = self.small['layout']
    names = part('names')
    return SkeletonDataset(
        x=x, lengths=part('lengths'), action=part('action'), subject=part('subject'),
        layout=str(layout) if layout.ndim == 0 else str(layout.reshape(-1)[0]),
        gender=part('gender'), split=part('split'),
        names=None if names is None else names.astype(str), edges=self.small.get('edges'),
        score=part('score'), **{k: part(k) for k in RECORDING_KEYS})

  def batches(self, batch_size: int) -> Iterator[tuple[int, SkeletonDataset]]:
    """(first row, validated dataset of the batch), reading x sequentially from the zip."""
    n = self.x_shape[0]
    for key in ('lengths', 'action', 'subject'):
      if self.small[key].shape != (n,):
        raise DataError(self.path, f'{key} must have shape [{n}] (one per sample), '
                        f'got {list(self.small[key].shape)}', key=key)
    row_items = int(np.prod(self.x_shape[1:]))
    with self._zip.open(self.members['x']) as f:
      _npy_header(f, self.path)
      for lo in range(0, n, batch_size):
        rows = min(batch_size, n - lo)
        raw = f.read(rows * row_items * self.x_dtype.itemsize)
        if len(raw) != rows * row_items * self.x_dtype.itemsize:
          raise DataError(self.path, 'x ends early (truncated file)', key='x', sample=lo)
        x = np.frombuffer(raw, self.x_dtype).reshape((rows,) + tuple(self.x_shape[1:]))
        yield lo, validate_batch(self.dataset_of(x.copy(), lo), self.path, lo)


def validate_batch(ds: SkeletonDataset, path, offset: int) -> SkeletonDataset:
  """`validate` on one batch, with the sample number counted from the start of the file."""
  try:
    return validate(ds, path)
  except DataError as e:
    if e.sample is None:
      raise
    raise DataError(path, e.problem, sample=e.sample + offset, name=e.name, key=e.key) from None


def _check_output(input_path: str, output_path: str, overwrite: bool) -> None:
  if os.path.abspath(input_path) == os.path.abspath(output_path):
    raise DataError(output_path, 'output is the input file; the input is never overwritten')
  if os.path.exists(output_path) and not overwrite:
    raise OutputExistsError(output_path)


def _temp_memmap(near: str, shape, dtype):
  """A memory-mapped .npy next to `near` (same filesystem, so it never fills /tmp)."""
  directory = os.path.dirname(os.path.abspath(near))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(near) + '.', suffix='.x.npy',
                             dir=directory)
  os.close(fd)
  return tmp, np.lib.format.open_memmap(tmp, mode='w+', dtype=dtype, shape=tuple(shape))


def _apply_checked(apply_fn: ApplyFn, x: np.ndarray, lengths: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(x', its lengths: the input's unless apply_fn returned its own)."""
  out = apply_fn(x, lengths)
  out, played = out if isinstance(out, tuple) else (out, lengths)
  out = np.asarray(out, np.float32)
  if out.shape != x.shape:
    raise ValueError(f'the anonymizer returned {out.shape} for a batch of {x.shape}')
  return out, np.asarray(played, np.int32)


def anonymize_npz(input_path, output_path, apply_fn: ApplyFn, *, batch_size: int = 64,
                  overwrite: bool = False, check: CheckFn | None = None,
                  progress: Callable[[int, int], None] | None = None) -> int:
  """Streams a generic npz through `apply_fn` into a new npz; returns the number of samples.

  Args:
    input_path: generic `.npz` (read-only).
    output_path: the `.npz` to write; refused when it exists unless `overwrite`.
    apply_fn: batch transform.
    batch_size: samples per batch (the memory bound).
    check: called with the first batch and its layout name to refuse incompatible data
      (layout, persons, joints) before anything is written.
    progress: called with (done, total) after each batch.
  """
  input_path, output_path = os.fspath(input_path), os.fspath(output_path)
  _check_output(input_path, output_path, overwrite)
  with NpzStream(input_path) as stream:
    n = stream.x_shape[0]
    tmp_x, out = _temp_memmap(output_path, stream.x_shape, np.float32)
    lengths = np.asarray(stream.small['lengths']).copy()
    try:
      for lo, batch in stream.batches(batch_size):
        if lo == 0 and check is not None:
          check(batch.x, batch.layout, edges=stream.small.get('edges'),
                normalize=stream.small.get('normalize'))
        hi = lo + batch.num_samples
        out[lo:hi], played = _apply_checked(apply_fn, batch.x, batch.lengths)
        lengths[lo:hi] = played
        if progress is not None:
          progress(lo + batch.num_samples, n)
      out.flush()
      del out

      def write(tmp):
        # Zip64 so that outputs above 4 GB stay readable; x streams from disk into the archive.
        with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED, allowZip64=True) as zout:
          changed = not np.array_equal(lengths, stream.small['lengths'])
          stream.copy_members(zout, skip=('x', 'lengths') if changed else ('x',))
          zout.write(tmp_x, arcname=stream.members['x'])
          if changed:       # the outputs' own durations
            with zout.open(stream.members['lengths'], 'w') as f:
              np.lib.format.write_array(f, lengths.astype(stream.small['lengths'].dtype),
                                        allow_pickle=False)

      atomic_write(output_path, write, overwrite=overwrite)
    finally:
      if os.path.exists(tmp_x):
        os.remove(tmp_x)
  return n


def anonymize_msg3d_npy(input_path, output_path, apply_fn: ApplyFn, *, batch_size: int = 64,
                        overwrite: bool = False,
                        check: CheckFn | None = None,
                        progress: Callable[[int, int], None] | None = None) -> int:
  """Streams an MS-G3D `(N, 3, T, V, M)` .npy through `apply_fn`; returns the sample count.

  `check` receives the first batch in channels-last form [B, M, T, V, 3] and no layout name
  (the format has none). Valid frames are those
  up to the last non-zero one (MS-G3D arrays carry no lengths).
  """
  input_path, output_path = os.fspath(input_path), os.fspath(output_path)
  _check_output(input_path, output_path, overwrite)
  if not os.path.exists(input_path):
    raise DataError(input_path, 'file does not exist')
  try:
    data = np.load(input_path, mmap_mode='r', allow_pickle=False)
  except ValueError as e:
    raise DataError(input_path, f'not a readable numeric .npy array ({e})') from None
  if data.ndim != 5 or data.shape[1] != 3:
    raise DataError(input_path, f'MS-G3D data must have shape (N, 3, T, V, M), '
                    f'got {list(data.shape)}', key='x')
  n = data.shape[0]
  tmp_x, out = _temp_memmap(output_path, data.shape, np.float32)
  try:
    for lo in range(0, n, batch_size):
      x = np.ascontiguousarray(np.asarray(data[lo:lo + batch_size], np.float32)
                               .transpose(0, 4, 2, 3, 1))                 # -> [B, M, T, V, 3]
      finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
      if not finite.all():
        raise DataError(input_path, 'coordinates contain NaN or inf', key='x',
                        sample=lo + int(np.flatnonzero(~finite)[0]))
      if lo == 0 and check is not None:
        check(x, None)
      y, _ = _apply_checked(apply_fn, x, lengths_from_frames(x))   # zero frames say the length
      out[lo:lo + len(x)] = y.transpose(0, 4, 2, 3, 1)
      if progress is not None:
        progress(lo + len(x), n)
    out.flush()
    del out
    atomic_write(output_path, lambda tmp: os.replace(tmp_x, tmp), overwrite=overwrite)
  finally:
    if os.path.exists(tmp_x):
      os.remove(tmp_x)
  return n
