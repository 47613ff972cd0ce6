"""Plumbing shared by the per-file readers: parallel parsing and a bounded-memory sample buffer.

A reader turns one file into `(x [m, t, V, C], fields)` (C = 3, or 2 for image keypoints, with
optional scores) or a skip reason; `gather` runs it in worker processes with a progress bar and
stacks the results into one `[N, M, T, V, C]` array. When
that array would be large it lives in a memory-mapped temporary file next to the output, so NTU120
at T=300 converts on a machine with less RAM than the dataset.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import tempfile
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from skeleton_anon.errors import DataError

# Above this many bytes the stacked coordinates go to a memory-mapped temporary file.
MEMMAP_THRESHOLD_BYTES = 2 << 30


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A file or sample left out of the output, and why."""
  name: str
  reason: str


@dataclasses.dataclass(frozen=True)
class ErrorInfo:
  """A DataError's fields: exceptions with keyword-only arguments do not survive pickling back
  from a worker process, these plain fields do."""
  path: str | None
  problem: str
  sample: int | None = None
  name: str | None = None

  @classmethod
  def from_error(cls, e: DataError) -> 'ErrorInfo':
    return cls(e.path, e.problem, e.sample, e.name)

  def to_error(self) -> DataError:
    return DataError(self.path, self.problem, sample=self.sample, name=self.name)

  @property
  def reason(self) -> str:
    return self.problem


class _Guarded:
  """Calls `fn(item)` and turns a DataError into an `ErrorInfo` result (picklable)."""

  def __init__(self, fn: Callable[[Any], Any]):
    self.fn = fn

  def __call__(self, item):
    try:
      return self.fn(item)
    except DataError as e:
      return ErrorInfo.from_error(e)


def parallel_map(fn: Callable[[Any], Any], items: Sequence[Any], *, workers: int = 1,
                 desc: str = 'reading', progress: bool = True) -> Iterable[Any]:
  """Yields `fn(item)` in input order, a DataError becoming an `ErrorInfo`, with a progress bar."""
  guarded = _Guarded(fn)
  workers = max(1, min(int(workers), len(items)))
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(items), desc=desc, unit='file', file=sys.stderr, dynamic_ncols=True)
  try:
    if workers == 1:
      results = map(guarded, items)
      pool = None
    else:
      # fork keeps start-up cheap, but forking a process that has started JAX's threads can
      # deadlock; then a fresh interpreter per worker is the safe choice.
      methods = multiprocessing.get_all_start_methods()
      method = 'fork' if 'fork' in methods and 'jax' not in sys.modules else 'spawn'
      pool = multiprocessing.get_context(method).Pool(workers)
      chunk = max(1, min(64, len(items) // (workers * 8)))
      results = pool.imap(guarded, items, chunksize=chunk)
    try:
      for result in results:
        if bar is not None:
          bar.update()
        yield result
    finally:
      if pool is not None:
        pool.terminate()
        pool.join()
  finally:
    if bar is not None:
      bar.close()


class SampleBuffer:
  """Stacks per-sample arrays into `[capacity, M, T, V, C]` float32, cropping to T frames.

  C is 3 (3D) or 2 (image keypoints); with `scores`, per-joint confidences are stacked into
  `[capacity, M, T, V]` beside them. Memory-mapped to temporary files in `directory` when the
  arrays exceed `threshold` bytes; `close()` (or the context manager) removes them.
  """

  def __init__(self, capacity: int, persons: int, frames: int, joints: int, *,
               channels: int = 3, scores: bool = False, directory: str | None = None,
               threshold: int | None = None):
    shape = (max(capacity, 1), persons, frames, joints, channels)
    nbytes = int(np.prod(shape)) * 4
    threshold = MEMMAP_THRESHOLD_BYTES if threshold is None else threshold
    self._tmps = []
    big = nbytes > threshold
    self.x = self._alloc(shape, big, directory)
    self.score = self._alloc(shape[:-1], big, directory) if scores else None
    self.lengths = np.zeros(shape[0], np.int32)
    self.count = 0
    self.cropped = 0

  def _alloc(self, shape, memmap: bool, directory) -> np.ndarray:
    if not memmap:
      return np.zeros(shape, np.float32)
    fd, tmp = tempfile.mkstemp(prefix='.skeleton_anon_buffer.', suffix='.npy', dir=directory)
    os.close(fd)
    self._tmps.append(tmp)
    return np.lib.format.open_memmap(tmp, mode='w+', dtype=np.float32, shape=shape)

  @property
  def is_memmap(self) -> bool:
    return bool(self._tmps)

  def add(self, sample: np.ndarray, length: int | None = None,
          score: np.ndarray | None = None) -> int:
    """Appends `sample` [m, t, V, C] (m <= M persons) and its `score` [m, t, V] (when the
    buffer keeps scores; None there means all 1); returns its row."""
    m, t = sample.shape[:2]
    frames = self.x.shape[2]
    if t > frames:
      self.cropped += 1
    t_kept = min(t, frames)
    row = self.count
    self.x[row, :m, :t_kept] = sample[:, :t_kept]
    if self.score is not None:
      self.score[row, :m, :t_kept] = 1.0 if score is None else score[:, :t_kept]
    self.lengths[row] = min(t if length is None else length, frames)
    self.count += 1
    return row

  def arrays(self) -> tuple[np.ndarray, np.ndarray]:
    """(x, lengths) of the samples added so far (views, no copy)."""
    return self.x[:self.count], self.lengths[:self.count]

  def scores(self) -> np.ndarray | None:
    """score [count, M, T, V] of the samples added so far (a view), or None."""
    return None if self.score is None else self.score[:self.count]

  def close(self) -> None:
    if self._tmps:
      # Unlinking keeps any still-referenced mapping valid (POSIX) while the disk space is
      # returned once the last view goes; closing the map here could crash such a view.
      self.x = self.score = None
      for tmp in self._tmps:
        if os.path.exists(tmp):
          os.remove(tmp)
      self._tmps = []

  def __enter__(self) -> 'SampleBuffer':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def select_persons(bodies: np.ndarray, max_persons: int,
                   scores: np.ndarray | None = None):
  """Keeps the `max_persons` bodies that move most, in decreasing order (2s-AGCN's criterion).

  A body's motion is the sum over the channels (x, y, z; or x, y) of the standard deviation of
  its coordinates over the frames where it is present (all joints together). Ties keep the
  earlier body first. Bodies missing from the input are zero-padded at the end.

  Args:
    bodies: [B, T, V, C].
    max_persons: persons to keep.
    scores: optional [B, T, V] per-joint confidences, reordered exactly like the bodies.
  Returns:
    [max_persons, T, V, C], same dtype; with `scores`, the pair (bodies, scores
    [max_persons, T, V]).
  """
  order = person_order(bodies, max_persons)
  out = np.zeros((max_persons,) + bodies.shape[1:], bodies.dtype)
  out[:len(order)] = bodies[order]
  if scores is None:
    return out
  kept = np.zeros((max_persons,) + bodies.shape[1:3], scores.dtype)
  kept[:len(order)] = scores[order]
  return out, kept


def person_order(bodies: np.ndarray, max_persons: int) -> np.ndarray:
  """Indices of the (at most) `max_persons` bodies of [B, T, V, C] that move most, most first."""
  b, t, v, c = bodies.shape
  present = np.abs(bodies).reshape(b, t, -1).max(axis=2) > 0           # [B, T]
  count = present.sum(axis=1) * v                                        # values per channel
  safe = np.maximum(count, 1)[:, None]
  mask = present[:, :, None, None]
  flat = np.where(mask, bodies, 0).astype(np.float64).reshape(b, t * v, c)
  mean = flat.sum(axis=1) / safe
  sq = np.where(mask, bodies.astype(np.float64) - mean[:, None, None, :], 0) ** 2
  std = np.sqrt(sq.reshape(b, t * v, c).sum(axis=1) / safe)
  energy = np.where(count > 0, std.sum(axis=1), 0.0)
  return np.argsort(-energy, kind='stable')[:max_persons]


def nonzero_length(x: np.ndarray) -> np.ndarray:
  """int32 [N]: one past the last frame with any non-zero coordinate, for x [N, M, T, V, C]."""
  n, _, t = x.shape[:3]
  lengths = np.zeros(n, np.int32)
  for start in range(0, n, 1024):  # chunks keep the temporary small for memory-mapped input
    block = np.asarray(x[start:start + 1024])
    any_frame = (block != 0).any(axis=(1, 3, 4))                     # [n, T]
    last = t - np.argmax(any_frame[:, ::-1], axis=1)
    lengths[start:start + len(block)] = np.where(any_frame.any(axis=1), last, 0)
  return lengths


@dataclasses.dataclass
class Gathered:
  """Output of `gather`: the stacked samples plus what each loader reported."""
  buffer: SampleBuffer
  names: list[str]
  infos: list[dict]
  skipped: list[Skipped]


def gather(items: Sequence[Any], names: Sequence[str], load: Callable[[Any], Any], *,
           persons: int, frames: int, joints: int, workers: int = 1, on_error: str = 'stop',
           progress: bool = True, desc: str = 'reading', channels: int = 3,
           scores: bool = False, buffer: dict | None = None) -> Gathered:
  """Runs `load` over `items` in parallel and stacks the samples it returns.

  `load(item)` returns `(x [m, t, V, C], info)` (info may hold 'length' and, with `scores`,
  'score' [m, t, V]), a `Skipped` (a sample
  the reader's policy leaves out), or raises DataError. With on_error='stop' the first DataError
  is raised here; with 'skip' it becomes a `Skipped` with the error's problem as reason.
  The caller owns the returned buffer and must `release` the dataset built on it.
  """
  if on_error not in ('stop', 'skip'):
    raise DataError(None, f"on_error must be 'stop' or 'skip', got {on_error!r}")
  buf = SampleBuffer(len(items), persons, frames, joints, channels=channels, scores=scores,
                     **(buffer or {}))
  try:
    out = Gathered(buf, [], [], [])
    for name, result in zip(names, parallel_map(load, items, workers=workers, desc=desc,
                                                progress=progress)):
      if isinstance(result, ErrorInfo):
        if on_error == 'stop':
          raise result.to_error()
        out.skipped.append(Skipped(name, result.reason))
      elif isinstance(result, Skipped):
        out.skipped.append(result)
      else:
        x, info = result
        buf.add(x, info.get('length'), info.pop('score', None))
        out.names.append(name)
        out.infos.append(info)
    return out
  except BaseException:
    buf.close()
    raise


def release(ds) -> None:
  """Removes the memory-mapped temporary file behind `ds.x`, if any (after saving)."""
  buf = ds.meta.pop('buffer', None)
  if buf is not None:
    buf.close()
