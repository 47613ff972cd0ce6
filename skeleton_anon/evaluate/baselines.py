"""Training-free anonymization baselines: random noise and bone-length retargeting.

Any learned anonymizer has to beat these. Noise (the paper's Table 3 'RN' rows) shows what mere
distortion costs; retargeting removes body proportions, the most obvious identity and gender cue,
while keeping every bone's direction, i.e. the motion.

Everything works on channels-last arrays [N, M, T, V, 3] and keeps padded frames and absent persons
exactly zero, as the dataset contract requires.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.layouts import Layout

NOISE_SIGMAS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)

# Above this many valid (sample, person, frame) entries the median is taken on an evenly strided
# subset: an exact median over NTU-scale data would need gigabytes for a number that does not move.
_MEDIAN_MAX_ENTRIES = 2_000_000
_CHUNK = 256


def valid_mask(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """bool [N, M, T]: frame within `lengths` and person present in the sample.

  A person is present when any of its coordinates is non-zero anywhere in the sample (absent
  persons are all zero by contract).
  """
  n, _, t = x.shape[:3]
  in_time = np.arange(t)[None, :] < np.asarray(lengths)[:, None]          # [N, T]
  present = (x != 0).any(axis=(2, 3, 4))                                  # [N, M]
  return in_time[:, None, :] & present[:, :, None]


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


def add_noise(x: np.ndarray, lengths: np.ndarray, sigma: float, seed: int) -> np.ndarray:
  """x plus N(0, sigma^2) on every coordinate of valid frames of present persons.

  Seeded: the same (x, sigma, seed) always gives the same result. Padding stays exactly zero.
  Noise is drawn chunk by chunk from one generator, so no second full-size array is needed.
  """
  rng = np.random.default_rng(seed)
  out = np.empty(x.shape, np.float32)
  for lo in range(0, x.shape[0], _CHUNK):
    chunk = np.asarray(x[lo:lo + _CHUNK], np.float32)
    noise = rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(sigma)
    mask = valid_mask(chunk, lengths[lo:lo + _CHUNK])[..., None, None]
    out[lo:lo + _CHUNK] = chunk + np.where(mask, noise, np.float32(0))
  return out


def _ancestor_matrix(layout: Layout) -> np.ndarray:
  """float32 [V, V]: entry (j, k) is 1 when the bone ending at joint k lies on root -> j.

  A joint's position is the root's plus the sum of the bone vectors along its path, so this
  matrix turns per-bone vectors into positions with one matmul, no loop over joints.
  """
  parents = layout.parents
  v = layout.num_joints
  path = np.zeros((v, v), np.float32)
  for j in range(v):
    k = j
    while k != layout.root:
      path[j, k] = 1.0
      k = parents[k]
  return path


def bone_vectors(x: np.ndarray, layout: Layout) -> np.ndarray:
  """[..., V, 3]: joint minus its tree parent; zero at the root."""
  return x - x[..., layout.parents, :]


def median_bone_lengths(x: np.ndarray, lengths: np.ndarray, layout: Layout) -> np.ndarray:
  """float32 [V]: each bone's median length over valid frames of present persons.

  Entry j is the bone ending at joint j (0 for the root). Computed in chunks of samples; beyond
  `_MEDIAN_MAX_ENTRIES` valid entries an evenly strided subset is used.
  """
  total = int(sum(valid_mask(x[lo:lo + _CHUNK], lengths[lo:lo + _CHUNK]).sum()
                  for lo in range(0, x.shape[0], _CHUNK)))
  if total == 0:
    raise ValueError('no valid frames to measure bone lengths on')
  stride = max(1, -(-total // _MEDIAN_MAX_ENTRIES))
  kept, offset = [], 0
  for lo in range(0, x.shape[0], _CHUNK):
    chunk = np.asarray(x[lo:lo + _CHUNK], np.float32)
    mask = valid_mask(chunk, lengths[lo:lo + _CHUNK])
    frames = chunk[mask]                                                    # [K, V, 3]
    # Keep every stride-th valid entry counting across chunks, so the subset is even.
    take = (np.arange(offset, offset + len(frames)) % stride) == 0
    offset += len(frames)
    kept.append(np.linalg.norm(bone_vectors(frames[take], layout), axis=-1))
  return np.median(np.concatenate(kept, axis=0), axis=0).astype(np.float32)


def retarget(x: np.ndarray, lengths: np.ndarray, layout: Layout,
             target_lengths: np.ndarray) -> np.ndarray:
  """Every bone keeps its direction in every frame and takes `target_lengths`.

  The skeleton is rebuilt outward from the root (which keeps its position) along the layout's
  tree. A zero-length bone (a joint on top of its parent) has no direction and stays zero.

  Args:
    x: float32 [N, M, T, V, 3].
    lengths: int [N] valid frames.
    layout: the skeleton; `target_lengths[j]` is the bone ending at joint j.
    target_lengths: [V], e.g. `median_bone_lengths` of the training set.

  Returns:
    float32 array of x's shape; padded frames and absent persons stay zero.
  """
  target_lengths = np.asarray(target_lengths, np.float32)
  if target_lengths.shape != (layout.num_joints,):
    raise ValueError(f'target_lengths must have shape [{layout.num_joints}], '
                     f'got {target_lengths.shape}')
  path = _ancestor_matrix(layout)
  out = np.empty(x.shape, np.float32)
  for lo in range(0, x.shape[0], _CHUNK):
    chunk = np.asarray(x[lo:lo + _CHUNK], np.float32)
    bones = bone_vectors(chunk, layout)
    norm = np.linalg.norm(bones, axis=-1, keepdims=True)
    direction = np.divide(bones, norm, out=np.zeros_like(bones), where=norm > 0)
    scaled = direction * target_lengths[:, None]
    root = chunk[..., layout.root:layout.root + 1, :]
    rebuilt = root + np.einsum('jk,...kc->...jc', path, scaled)
    mask = valid_mask(chunk, lengths[lo:lo + _CHUNK])[..., None, None]
    out[lo:lo + _CHUNK] = np.where(mask, rebuilt, np.float32(0))
  return out
