"""Skeleton transforms shared by models, training, baselines and attacks.

One home for the facts about a skeleton array that several layers need: which entries are real
(valid frames of present persons), bones as child-minus-parent vectors, and bone-length
retargeting. The functions take numpy arrays, and `valid_mask` and `bone_vectors` also take JAX
arrays (traced or not), so a jitted loss and a numpy baseline apply the same definition.

Arrays are channels-last [N, M, T, V, C]; padded frames and absent persons are exactly zero
(the dataset contract), and every transform here keeps them zero.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.layouts import Layout

# Above this many valid (sample, person, frame) entries the median is taken on an evenly strided
# subset: an exact median over NTU-scale data would need gigabytes for a number that does not move.
_MEDIAN_MAX_ENTRIES = 2_000_000
CHUNK = 256


def array_module(x):
  """numpy for numpy input, jax.numpy for a JAX array or tracer (imported only then)."""
  if isinstance(x, np.ndarray):
    return np
  import jax.numpy as jnp
  return jnp


def valid_mask(x, lengths):
  """bool [N, M, T]: frame t < lengths[n] and person m present in sample n.

  A person is present when any of its coordinates is non-zero anywhere in the sample (absent
  persons are all zero by contract), so a one-person sample in a two-person tensor does not count
  its empty slot, and a sensor dropout frame inside a present person's sequence does count.
  Works on numpy and on JAX arrays (inside jit too).
  """
  xp = array_module(x)
  t = x.shape[2]
  in_time = xp.arange(t)[None, :] < xp.asarray(lengths).reshape(-1, 1)    # [N, T]
  present = xp.any(x != 0, axis=(2, 3, 4))                                # [N, M]
  return in_time[:, None, :] & present[:, :, None]


def bone_vectors(x, parents: np.ndarray):
  """[..., V, C]: joint minus its tree parent (`layout.parents`); zero at the root."""
  xp = array_module(x)
  return x - xp.take(x, xp.asarray(parents), axis=-2)


def ancestor_matrix(layout: Layout) -> np.ndarray:
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


def bone_lengths(x, parents: np.ndarray):
  """[..., V]: length of the bone ending at each joint (0 at the root)."""
  xp = array_module(x)
  return xp.linalg.norm(bone_vectors(x, parents), axis=-1)


def median_bone_lengths(x: np.ndarray, lengths: np.ndarray, layout: Layout) -> np.ndarray:
  """float32 [V]: each bone's median length over valid frames of present persons.

  Entry j is the bone ending at joint j (0 for the root). Computed in chunks of samples; beyond
  `_MEDIAN_MAX_ENTRIES` valid entries an evenly strided subset is used.
  """
  total = int(sum(valid_mask(np.asarray(x[lo:lo + CHUNK]), lengths[lo:lo + CHUNK]).sum()
                  for lo in range(0, x.shape[0], CHUNK)))
  if total == 0:
    raise ValueError('no valid frames to measure bone lengths on')
  stride = max(1, -(-total // _MEDIAN_MAX_ENTRIES))
  kept, offset = [], 0
  for lo in range(0, x.shape[0], CHUNK):
    chunk = np.asarray(x[lo:lo + CHUNK], np.float32)
    frames = chunk[valid_mask(chunk, lengths[lo:lo + CHUNK])]               # [K, V, 3]
    # Keep every stride-th valid entry counting across chunks, so the subset is even.
    take = (np.arange(offset, offset + len(frames)) % stride) == 0
    offset += len(frames)
    kept.append(bone_lengths(frames[take], layout.parents))
  return np.median(np.concatenate(kept, axis=0), axis=0).astype(np.float32)


def retarget(x: np.ndarray, lengths: np.ndarray, layout: Layout,
             target_lengths: np.ndarray) -> np.ndarray:
  """Every bone keeps its direction in every frame and takes `target_lengths`.

  The skeleton is rebuilt outward from the root (which keeps its position) along the layout's
  tree. A zero-length bone (a joint on top of its parent) has no direction and stays zero.

  Args:
    x: float32 [N, M, T, V, C].
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
  path = ancestor_matrix(layout)
  out = np.empty(x.shape, np.float32)
  for lo in range(0, x.shape[0], CHUNK):
    chunk = np.asarray(x[lo:lo + CHUNK], np.float32)
    bones = bone_vectors(chunk, layout.parents)
    norm = np.linalg.norm(bones, axis=-1, keepdims=True)
    direction = np.divide(bones, norm, out=np.zeros_like(bones), where=norm > 0)
    scaled = direction * target_lengths[:, None]
    root = chunk[..., layout.root:layout.root + 1, :]
    rebuilt = root + np.einsum('jk,...kc->...jc', path, scaled)
    mask = valid_mask(chunk, lengths[lo:lo + CHUNK])[..., None, None]
    out[lo:lo + CHUNK] = np.where(mask, rebuilt, np.float32(0))
  return out


def resample(x: np.ndarray, lengths: np.ndarray, num_frames: int) -> np.ndarray:
  """float32 [N, M, num_frames, V, C]: each sample's valid frames linearly resampled.

  Sequences of different durations become comparable frame by frame (frame k of every output is
  the same fraction of its performance); a one-frame sample is repeated.
  """
  x = np.asarray(x, np.float32)
  lengths = np.maximum(np.asarray(lengths), 1)
  pos = (np.linspace(0.0, 1.0, num_frames)[None, :]
         * (lengths[:, None] - 1).astype(np.float64))                    # [N, K]
  lo = np.floor(pos).astype(np.int64)
  hi = np.minimum(lo + 1, (lengths - 1)[:, None])
  w = (pos - lo).astype(np.float32)[:, None, :, None, None]
  idx = np.arange(x.shape[0])[:, None]
  a = x[idx, :, lo].transpose(0, 2, 1, 3, 4)                              # [N, M, K, V, C]
  b = x[idx, :, hi].transpose(0, 2, 1, 3, 4)
  return a * (1 - w) + b * w


def direction_encoding(x: np.ndarray, lengths: np.ndarray, layout: Layout,
                       num_frames: int) -> np.ndarray:
  """float32 [N, M, num_frames, V, C]: unit bone directions, resampled to num_frames.

  Entry j holds the direction of the bone ending at joint j; the root's entry holds the root's
  position instead. Bone lengths are gone from the encoding (`direction_decoding` puts chosen
  ones back), and every sequence has the same number of frames, so sequences of different
  people and durations are vectors of one space.
  """
  bones = bone_vectors(np.asarray(x, np.float32), layout.parents)
  norm = np.linalg.norm(bones, axis=-1, keepdims=True)
  packed = np.divide(bones, norm, out=np.zeros_like(bones), where=norm > 0)
  packed[..., layout.root, :] = x[..., layout.root, :]
  return resample(packed, lengths, num_frames)


def direction_decoding(packed: np.ndarray, out_lengths: np.ndarray, num_frames: int,
                       layout: Layout, bone_lengths_: np.ndarray, *,
                       present: np.ndarray | None = None) -> np.ndarray:
  """Skeletons [N, M, num_frames, V, C] from `direction_encoding`s, sample n resampled to
  out_lengths[n] frames (the rest zero) with every bone at `bone_lengths_` [V] (or, per
  sample, [N, V]).

  Directions are renormalised after resampling (and after whatever was done to them), so bone
  lengths are constant over time by construction. A person slot is present where `present`
  [N, M] says (default: where the encoding is non-zero); absent ones stay zero.
  """
  packed = np.asarray(packed, np.float32)
  encoded_frames = packed.shape[2]
  path = ancestor_matrix(layout)
  out = np.zeros(packed.shape[:2] + (num_frames,) + packed.shape[3:], np.float32)
  if present is None:
    present = np.any(packed != 0, axis=(2, 3, 4))                           # [N, M]
  out_lengths = np.clip(np.asarray(out_lengths), 1, num_frames)
  for n_frames in np.unique(out_lengths):
    idx = np.flatnonzero(out_lengths == n_frames)
    q = resample(packed[idx], np.full(len(idx), encoded_frames), int(n_frames))
    root = q[..., layout.root:layout.root + 1, :].copy()
    q[..., layout.root, :] = 0
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    d = np.divide(q, norm, out=np.zeros_like(q), where=norm > 0)
    lengths_here = (bone_lengths_[:, None] if np.ndim(bone_lengths_) == 1 else
                    np.asarray(bone_lengths_)[idx][:, None, None, :, None])
    rebuilt = root + np.einsum('jk,...kc->...jc', path, d * lengths_here)
    out[idx, :, :n_frames] = rebuilt * present[idx][:, :, None, None, None]
  return out


def first_person_mean_posture(x: np.ndarray, lengths: np.ndarray, layout: Layout
                              ) -> tuple[np.ndarray, np.ndarray]:
  """(root-centred time-mean posture [N, V, C], time-mean root position [N, C]) of each
  sample's first person (slot 0), over its valid frames."""
  mask = valid_mask(x, lengths)[:, 0].astype(np.float64)                  # [N, T]
  weight = mask / np.maximum(mask.sum(1, keepdims=True), 1.0)
  mean = np.einsum('nt,ntvc->nvc', weight, np.asarray(x[:, 0], np.float64))
  root = mean[:, layout.root]
  return mean - root[:, None], root


def rigid_alignment(posture: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """[N, C, C] rotations R (det +1) that best map each posture [N, V, C] onto reference
  [V, C] in least squares, R @ posture[n, v] ~ reference[v] (Kabsch)."""
  cov = np.einsum('vi,nvj->nij', np.asarray(reference, np.float64), posture)
  u, _, vt = np.linalg.svd(cov)
  flip = np.sign(np.linalg.det(u @ vt))
  u[:, :, -1] *= flip[:, None]
  return u @ vt


def lengths_from_frames(x: np.ndarray) -> np.ndarray:
  """int32 [N]: one past the last frame with any non-zero coordinate (at least 1)."""
  nonzero = (np.asarray(x) != 0).any(axis=(1, 3, 4))                        # [N, T]
  last = nonzero.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
  return np.where(nonzero.any(axis=1), last, 1).astype(np.int32)
