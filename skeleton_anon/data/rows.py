"""Rows: a selection of the samples of a big array that is not a copy of them.

A split of a memory-mapped dataset file (data/npz_mmap.py) is its rows `index` of the mapped `x`;
copying it out would put the split in RAM. `Rows(base, index)` reads the selected rows only
when asked, a slice or a batch at a time: `rows[lo:hi]`, `rows[indices]` and `rows[i]` return
numpy arrays of those rows; `shape`, `dtype`, `ndim` and `len` are the selection's. An optional
per-sample `transform(chunk, positions)` is applied to what is read (e.g. bone-length
retargeting of a split, computed a batch at a time instead of into a full-size copy), where
`positions` are the rows' positions in this selection.

Consumers read it like an array in chunks (every chunked function of data/transforms.py,
evaluate/baselines.py, evaluate/fidelity.py, data/features.py) or by batch
(train/parallel.gather_batch). `np.asarray(rows)` works too, and reads everything: that is the
copy this class exists to avoid, so the pipeline does not do it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# transform(chunk [n, ...] read from base, positions [n] int64 in the selection) -> chunk'.
Transform = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Rows:
  """Rows `index` of `base` (an array or memory map, leading axis = samples), read lazily."""

  def __init__(self, base, index=None, transform: Transform | None = None):
    if isinstance(base, Rows) and transform is None and base.transform is None:
      # A selection of a selection reads the same base rows: compose the indices.
      index = base.index if index is None else base.index[_as_index(index, len(base))]
      base = base.base
    elif index is None:
      index = np.arange(len(base))
    else:
      index = _as_index(index, len(base))
    self.base = base
    self.index = index
    self.transform = transform

  # ---- array-like facts
  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self.index),) + tuple(self.base.shape[1:])

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.float32) if self.transform is not None else self.base.dtype

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))

  @property
  def nbytes(self) -> int:
    return self.size * self.dtype.itemsize

  def __len__(self) -> int:
    return len(self.index)

  def __repr__(self) -> str:
    return (f'Rows({len(self)} of {type(self.base).__name__} {tuple(self.base.shape)}'
            f'{", transformed" if self.transform is not None else ""})')

  # ---- reading
  def _read(self, positions: np.ndarray) -> np.ndarray:
    rows = self.index[positions]
    if len(rows) and np.all(np.diff(rows) == 1):
      chunk = np.array(self.base[int(rows[0]):int(rows[-1]) + 1])    # one contiguous read
    else:
      chunk = np.asarray(self.base[rows])
    if self.transform is not None:
      chunk = self.transform(chunk, positions)
    return chunk

  def __getitem__(self, key):
    if isinstance(key, tuple):
      first, rest = (key[0], key[1:]) if key else (slice(None), ())
      if not rest:
        return self[first]
      if isinstance(first, (int, np.integer)):          # the row axis is gone
        return self[first][rest]
      return self[first][(slice(None),) + rest]
    if isinstance(key, (int, np.integer)):
      i = int(key)
      if not -len(self) <= i < len(self):
        raise IndexError(f'row {i} out of range for {len(self)} rows')
      return self._read(np.asarray([i % len(self)]))[0]
    if isinstance(key, slice):
      return self._read(np.arange(len(self))[key])
    return self._read(_as_index(key, len(self)))

  def __array__(self, dtype=None, copy=None):
    out = self._read(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype, copy=False)


def _as_index(key, length: int) -> np.ndarray:
  key = np.asarray(key)
  if key.dtype == bool:
    if key.shape != (length,):
      raise IndexError(f'boolean index of shape {key.shape} for {length} rows')
    return np.flatnonzero(key)
  if not np.issubdtype(key.dtype, np.integer):
    raise IndexError(f'rows are selected by integers or a boolean mask, got {key.dtype}')
  key = key.astype(np.int64).reshape(-1)
  if key.size and (key.min() < -length or key.max() >= length):
    raise IndexError(f'row index out of range for {length} rows')
  return np.where(key < 0, key + length, key)


def is_rows(x) -> bool:
  return isinstance(x, Rows)


def is_mapped(x) -> bool:
  """Whether x reads from a file (a memory map, or Rows of one) instead of RAM."""
  if isinstance(x, Rows):
    return is_mapped(x.base)
  while isinstance(x, np.ndarray):
    if isinstance(x, np.memmap):
      return True
    x = x.base
  return False


def float32_rows(x):
  """x as float32 samples without reading it whole: Rows and float32 arrays (memory maps
  included) as they are, anything else through np.asarray."""
  if isinstance(x, Rows) and x.dtype == np.float32:
    return x
  if isinstance(x, np.ndarray) and x.dtype == np.float32:
    return x
  return np.asarray(x, np.float32)


def take(x, index) -> np.ndarray:
  """x[index] as a numpy array, for arrays, memory maps and Rows alike."""
  if isinstance(x, Rows):
    return x[index]
  return np.asarray(x)[index]
