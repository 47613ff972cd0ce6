"""Training-free anonymization baselines (random noise; bone-length retargeting lives in
data.transforms) and the reconstruction error every method is scored by.

Any learned anonymizer has to beat these. Noise (the paper's Table 3 'RN' rows) shows what mere
distortion costs; retargeting removes body proportions, the most obvious identity and gender cue,
while keeping every bone's direction, i.e. the motion.

Everything works on channels-last arrays [N, M, T, V, 3] and keeps padded frames and absent persons
exactly zero, as the dataset contract requires.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.transforms import CHUNK as _CHUNK, valid_mask

NOISE_SIGMAS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)


def recon_rmse(original: np.ndarray, changed: np.ndarray, lengths: np.ndarray) -> float:
  """Root mean squared error per coordinate over valid frames of present persons.

  Persons and frames are taken from `original`, so an anonymizer that writes into padding is
  not rewarded for it; the paper's 'RMSE' uses the same per-coordinate scale (noise of standard
  deviation sigma gives RMSE close to sigma).
  """
  if original.shape != changed.shape:
    raise ValueError(f'shapes differ: {original.shape} vs {changed.shape}')
  total, count = 0.0, 0
  for lo in range(0, original.shape[0], _CHUNK):
    a = np.asarray(original[lo:lo + _CHUNK], np.float64)
    b = np.asarray(changed[lo:lo + _CHUNK], np.float64)
    mask = valid_mask(a, lengths[lo:lo + _CHUNK])
    diff = (a - b)[mask]                                                   # [K, V, 3]
    total += float(np.square(diff).sum())
    count += diff.size
  return float(np.sqrt(total / count)) if count else float('nan')


def add_noise(x: np.ndarray, lengths: np.ndarray, sigma: float, seed: int, *,
              out: np.ndarray | None = None) -> np.ndarray:
  """x plus N(0, sigma^2) on every coordinate of valid frames of present persons.

  Seeded: the same (x, sigma, seed) always gives the same result. Padding stays exactly zero.
  Noise is drawn chunk by chunk from one generator, so no second full-size array is needed.
  out: where to write (an array of x's shape, e.g. a disk-backed memory map); default a new one.
  """
  rng = np.random.default_rng(seed)
  if out is None:
    out = np.empty(x.shape, np.float32)
  for lo in range(0, x.shape[0], _CHUNK):
    chunk = np.asarray(x[lo:lo + _CHUNK], np.float32)
    noise = rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(sigma)
    mask = valid_mask(chunk, lengths[lo:lo + _CHUNK])[..., None, None]
    out[lo:lo + _CHUNK] = chunk + np.where(mask, noise, np.float32(0))
  return out
