"""Deterministic, checkpointable epoch iterator over sample indices.

The iterator yields the global batch's sample indices; `parallel.gather_batch` then has each process
read only its own rows. Epoch e's order is a permutation drawn from (seed, e), so the batch at
(epoch, position) is a pure function of the seed and a resumed run sees exactly the batches it would
have seen. A plain numpy permutation is all this needs (the data sit in memory or a memory map), so
Grain is not used here.

`Prefetcher` runs the iterator and the batch gathering (host rows -> device arrays) in a background
thread a few batches ahead of the training step, and hands out, with each batch, the iterator state
that follows it: a checkpoint saves the state of the last batch *consumed*, so a resumed run starts
at the next batch to train on however far the thread had read ahead.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass
class EpochIterator:
  """Shuffled batches of `batch_size` indices; the last batch of an epoch may be shorter.

  State is (epoch, position): `position` batches of `epoch` were already consumed.
  """
  num_samples: int
  batch_size: int
  seed: int = 0
  shuffle: bool = True
  epoch: int = 0
  position: int = 0

  def __post_init__(self):
    if self.num_samples <= 0:
      raise ValueError('cannot iterate over an empty dataset')
    self.batch_size = max(1, min(int(self.batch_size), int(self.num_samples)))

  @property
  def steps_per_epoch(self) -> int:
    return -(-self.num_samples // self.batch_size)

  def order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.num_samples)
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

  def next(self) -> tuple[int, int, np.ndarray]:
    """(epoch, position, indices) of the next batch; advances the state."""
    if self.position >= self.steps_per_epoch:
      self.epoch, self.position = self.epoch + 1, 0
    epoch, position = self.epoch, self.position
    start = position * self.batch_size
    indices = self.order(epoch)[start:start + self.batch_size]
    self.position += 1
    return epoch, position, indices

  def get_state(self) -> dict:
    return {'epoch': int(self.epoch), 'position': int(self.position)}

  def set_state(self, state: dict) -> None:
    self.epoch, self.position = int(state['epoch']), int(state['position'])


def sequential_batches(num_samples: int, batch_size: int):
  """Index arrays covering 0..num_samples-1 in order (for evaluation and export)."""
  for start in range(0, num_samples, batch_size):
    yield np.arange(start, min(start + batch_size, num_samples))


@dataclasses.dataclass
class Prefetched:
  """One batch from `Prefetcher`: where it sits, what `prepare` made of it, and the iterator
  state after it (the state to checkpoint once this batch has been trained on)."""
  epoch: int
  position: int
  batch: Any
  state: dict


class Prefetcher:
  """`count` batches of `iterator`, prepared `depth` ahead in a background thread.

  Batch i (i = 0 .. count-1) is `prepare(first_step + i, indices)` (default: the indices
  themselves); `prepare` typically gathers the rows and puts them on the devices, so the host
  gather and the host-to-device transfer overlap the previous steps. The batches, their order and
  their values are exactly those of calling `iterator.next()` in the loop: only the timing
  changes. The thread owns `iterator` until `close()`, which stops it and resets `iterator` to
  the state after the last batch handed out. An exception in `prepare` is raised by `next()`.
  """

  _DONE = object()

  def __init__(self, iterator: EpochIterator, count: int, *, first_step: int = 0,
               prepare: Callable[[int, np.ndarray], Any] | None = None, depth: int = 2):
    self.iterator = iterator
    self.state = iterator.get_state()       # after the last batch handed out
    self._count, self._given = int(count), 0
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    self._stop = threading.Event()
    self._thread = None
    if self._count > 0:
      self._thread = threading.Thread(target=self._run, args=(int(first_step), prepare),
                                      name='batch-prefetch', daemon=True)
      self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _run(self, first_step: int, prepare) -> None:
    try:
      for i in range(self._count):
        if self._stop.is_set():
          return
        epoch, position, indices = self.iterator.next()
        state = self.iterator.get_state()
        batch = indices if prepare is None else prepare(first_step + i, indices)
        if not self._put(Prefetched(epoch, position, batch, state)):
          return
    except BaseException as e:  # handed to the consumer, raised there
      self._put((self._DONE, e))

  def next(self) -> Prefetched:
    if self._given >= self._count:
      raise StopIteration('every prefetched batch was handed out')
    item = self._queue.get()
    if isinstance(item, tuple) and item and item[0] is self._DONE:
      raise item[1]
    self._given += 1
    self.state = item.state
    return item

  def close(self) -> None:
    """Stops the thread (dropping batches not handed out) and rewinds the iterator to `state`."""
    self._stop.set()
    if self._thread is not None:
      while self._thread.is_alive():
        try:
          self._queue.get(timeout=0.05)
        except queue.Empty:
          pass
      self._thread.join()
      self._thread = None
    self.iterator.set_state(self.state)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
