"""Deterministic, checkpointable epoch iterator over sample indices.

The iterator yields the global batch's sample indices; `parallel.gather_batch` then has each process
read only its own rows. Epoch e's order is a permutation drawn from (seed, e), so the batch at
(epoch, position) is a pure function of the seed and a resumed run sees exactly the batches it would
have seen. A plain numpy permutation is all this needs (the data sit in memory or a memory map), so
Grain is not used here.
"""

from __future__ import annotations

import dataclasses

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
