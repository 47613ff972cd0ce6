"""Per-sequence features that carry identity: body proportions and motion style.

The non-neural attackers (attacks/) fit 1-NN and linear models on these, and a training loss may
call them inside jit to measure (and penalise) what an anonymizer leaves, so every function here
takes numpy or JAX arrays (the same xp dispatch as data/transforms.py), has no Python loop over
samples, and is masked by valid frames: padded frames never change a feature.

One person per sample is described: the first present one (slot 0 unless it is empty), because
the subject label names the main performer and averaging two bodies would describe nobody.

Families (each [N, D] float32):
  body    bone lengths (median and std over valid frames, per non-root bone), pairwise joint
          distances (mean over valid frames, every joint pair) and the body's height (the two
          longest root-to-end chains of median bone lengths, e.g. head + leg). Data units.
          Bone lengths are pure proportions; the pairwise distances also read posture (how far
          the hands usually are from the hips), so after bone retargeting this block still
          carries the posture part of identity.
  motion  per-joint speed (mean and std over valid frame pairs), the mean pose relative to the
          root, and the magnitudes of the first `NUM_FREQS` cosine (DCT-II) coefficients of each
          joint's root-relative trajectory over the sample's own length (so a slow and a fast
          recording of the same rhythm land on the same bins). All divided by the height, so
          that the motion block describes how someone moves and not how big they are.
Gradients are finite everywhere (zero-length vectors use a safe norm), so the features can sit
in a differentiable loss.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.layouts import Layout
from skeleton_anon.data.rows import Rows
from skeleton_anon.data.transforms import array_module as _array_module, ancestor_matrix, valid_mask

FAMILIES = ('body', 'motion', 'body+motion')
NUM_FREQS = 4
# numpy input is processed in chunks of samples: pairwise distances of 100 frames x 25 joints
# need ~90 MB per 256 samples, the whole of a 10,000-sample file would need gigabytes.
_CHUNK = 256


def _safe_sqrt(sq, xp):
  """sqrt with a finite gradient at zero (padded frames); plain sqrt for numpy (no gradient)."""
  if xp is np:
    return np.sqrt(np.maximum(sq, 0.0))
  positive = sq > 0
  return xp.where(positive, xp.sqrt(xp.where(positive, sq, 1.0)), 0.0)


def _safe_norm(v, xp):
  """Euclidean norm over the last axis."""
  return _safe_sqrt(xp.sum(v * v, axis=-1), xp)


def _pairwise_distances(person, xp):
  """[N, T, P]: distance of every joint pair i < j, frame by frame.

  From the Gram matrix of root-free coordinates (|a-b|^2 = |a|^2 + |b|^2 - 2ab): one batched
  matmul instead of gathering P pairs, which is most of the feature time at NTU scale.
  """
  n, t, v, _ = person.shape
  centred = person - xp.mean(person, axis=2, keepdims=True)
  gram = xp.matmul(centred, xp.swapaxes(centred, -1, -2))
  diag = xp.sum(centred * centred, axis=-1)
  sq = (diag[..., :, None] + diag[..., None, :] - 2 * gram).reshape(n, t, v * v)
  iu, ju = np.triu_indices(v, k=1)
  return _safe_sqrt(xp.take(sq, xp.asarray(iu * v + ju), axis=-1), xp)


def _masked_mean(v, mask, xp):
  """Mean of v [N, T, ...] over T where mask [N, T]; 0 where a sample has no valid entry."""
  m = mask.reshape(mask.shape + (1,) * (v.ndim - 2)).astype(v.dtype)
  count = xp.maximum(xp.sum(m, axis=1), 1.0)
  return xp.sum(v * m, axis=1) / count


def _masked_std(v, mask, xp):
  mean = _masked_mean(v, mask, xp)
  var = _masked_mean((v - mean[:, None]) ** 2, mask, xp)
  return xp.sqrt(var + 1e-12)


def _masked_median(v, mask, xp):
  """Median of v [N, T, K] over T where mask [N, T] (mean of the two middle entries)."""
  big = xp.asarray(np.finfo(np.float32).max, v.dtype)
  filled = xp.where(mask[:, :, None], v, big)
  ordered = xp.sort(filled, axis=1)
  count = xp.sum(mask, axis=1).astype(np.int32)                   # [N]
  lo = xp.clip((count - 1) // 2, 0, v.shape[1] - 1)
  hi = xp.clip(count // 2, 0, v.shape[1] - 1)
  pick = lambda i: xp.take_along_axis(ordered, i[:, None, None], axis=1)[:, 0]
  median = 0.5 * (pick(lo) + pick(hi))
  return xp.where((count > 0)[:, None], median, 0.0)


def _first_person(x, lengths, xp):
  """x [N, T, V, C] of each sample's first present person and its valid frames [N, T]."""
  mask = valid_mask(x, lengths)                                   # [N, M, T]
  present = xp.any(mask, axis=2)                                  # [N, M]
  idx = xp.argmax(present, axis=1)                                # first present (0 if none)
  person = xp.take_along_axis(x, idx[:, None, None, None, None], axis=1)[:, 0]
  frames = xp.take_along_axis(mask, idx[:, None, None], axis=1)[:, 0]
  return person, frames


def _root_branches(layout: Layout) -> np.ndarray:
  """int [V]: which child of the root each joint hangs from (-1 for the root itself)."""
  parents = layout.parents
  branch = np.full(layout.num_joints, -1, np.int64)
  for j in range(layout.num_joints):
    k = j
    while k != layout.root and parents[k] != layout.root:
      k = parents[k]
    if j != layout.root:
      branch[j] = k
  return branch


def _height(bone_median, layout: Layout, xp):
  """[N]: sum of the two longest root-to-joint chains that start on different root bones."""
  depth = bone_median @ xp.asarray(ancestor_matrix(layout).T)     # [N, V] path length to j
  branch = _root_branches(layout)
  heads = np.unique(branch[branch >= 0])
  member = (branch[None, :] == heads[:, None]).astype(np.float32)  # [B, V]
  longest = xp.max(depth[:, None, :] * xp.asarray(member)[None], axis=2)   # [N, B]
  first = xp.max(longest, axis=1)
  if len(heads) == 1:
    return xp.maximum(first, 1e-6)
  is_first = xp.arange(len(heads))[None, :] == xp.argmax(longest, axis=1)[:, None]
  second = xp.max(xp.where(is_first, 0.0, longest), axis=1)
  return xp.maximum(first + second, 1e-6)


def _non_root(layout: Layout) -> np.ndarray:
  return np.asarray([j for j in range(layout.num_joints) if j != layout.root])


def _body_block(person, frames, layout: Layout, xp):
  """(features [N, D_body], height [N]) of one person [N, T, V, C]."""
  joints = _non_root(layout)
  bones = person - xp.take(person, xp.asarray(layout.parents), axis=-2)
  length = _safe_norm(bones, xp)                                  # [N, T, V]
  median = _masked_median(length, frames, xp)                     # [N, V] (root: 0)
  spread = _masked_std(length, frames, xp)
  pair = _pairwise_distances(person, xp)                          # [N, T, P]
  height = _height(median, layout, xp)
  feats = xp.concatenate([median[:, joints], spread[:, joints], _masked_mean(pair, frames, xp),
                          height[:, None]], axis=1)
  return feats, height


def _motion_block(person, frames, lengths, height, layout: Layout, xp, num_freqs: int):
  """features [N, D_motion] of one person [N, T, V, C], scaled by height [N]."""
  scale = (1.0 / height)[:, None, None, None]
  t = person.shape[1]
  # Speed: valid frame pairs only (a padded frame next to a real one is no movement).
  pairs = frames[:, 1:] & frames[:, :-1]
  speed = _safe_norm((person[:, 1:] - person[:, :-1]) * scale, xp)    # [N, T-1, V]
  root = person[:, :, layout.root:layout.root + 1]
  rel = ((person - root) * scale)                                     # [N, T, V, C]
  mean_pose = _masked_mean(rel, frames, xp)                           # [N, V, C]
  # DCT-II over each sample's own valid length (frames are the first `lengths`, by contract).
  steps = xp.maximum(xp.asarray(lengths).astype(person.dtype), 1.0)   # [N]
  k = xp.arange(1, num_freqs + 1, dtype=person.dtype)
  phase = (xp.arange(t, dtype=person.dtype)[None, :, None] + 0.5) / steps[:, None, None]
  basis = xp.cos(np.pi * k[None, None, :] * phase) * frames[:, :, None]   # [N, T, K]
  centred = (rel - mean_pose[:, None]) * frames[:, :, None, None]
  coef = xp.einsum('ntk,ntvc->nkvc', basis, centred) / steps[:, None, None, None]
  spectrum = _safe_norm(coef, xp).reshape(coef.shape[0], -1)          # [N, K * V]
  joints = _non_root(layout)
  n = person.shape[0]
  return xp.concatenate([_masked_mean(speed, pairs, xp), _masked_std(speed, pairs, xp),
                         mean_pose[:, joints].reshape(n, -1), spectrum], axis=1)


def _features(x, lengths, layout: Layout, family: str, num_freqs: int):
  xp = _array_module(x)
  person, frames = _first_person(x, lengths, xp)
  body, height = _body_block(person, frames, layout, xp)
  if family == 'body':
    return body
  motion = _motion_block(person, frames, lengths, height, layout, xp, num_freqs)
  if family == 'motion':
    return motion
  return xp.concatenate([body, motion], axis=1)


def sequence_features(x, lengths, layout: Layout, family: str = 'body+motion', *,
                      num_freqs: int = NUM_FREQS):
  """[N, D] float32 features of one family (see the module docstring) per sample.

  Args:
    x: float32 [N, M, T, V, C], numpy or JAX (jit-traceable; the layout is static).
    lengths: int [N] valid frames.
    layout: the skeleton (its tree gives bones and height).
    family: 'body', 'motion' or 'body+motion'.
    num_freqs: DCT coefficients per joint in the motion spectrum.
  """
  if family not in FAMILIES:
    raise ValueError(f'unknown feature family {family!r}; use one of {FAMILIES}')
  if x.ndim != 5 or x.shape[3] != layout.num_joints:
    raise ValueError(f'x must be [N, M, T, {layout.num_joints}, C], got {tuple(x.shape)}')
  if not isinstance(x, (np.ndarray, Rows)):
    return _features(x.astype('float32'), lengths, layout, family, num_freqs)
  lengths = np.asarray(lengths)
  parts = [_features(np.asarray(x[lo:lo + _CHUNK], np.float32), lengths[lo:lo + _CHUNK],
                     layout, family, num_freqs) for lo in range(0, x.shape[0], _CHUNK)]
  return np.concatenate(parts, axis=0).astype(np.float32)


def body_features(x, lengths, layout: Layout):
  """[N, D_body]: bone-length medians and spreads, mean pairwise distances, height."""
  return sequence_features(x, lengths, layout, 'body')


def motion_features(x, lengths, layout: Layout, *, num_freqs: int = NUM_FREQS):
  """[N, D_motion]: height-scaled joint speeds, mean root-relative pose, low-frequency DCT."""
  return sequence_features(x, lengths, layout, 'motion', num_freqs=num_freqs)


def feature_dim(layout: Layout, family: str = 'body+motion', *, num_freqs: int = NUM_FREQS) -> int:
  """Width D of `sequence_features` for a layout, without computing anything."""
  v = layout.num_joints
  body = 2 * (v - 1) + v * (v - 1) // 2 + 1
  motion = 2 * v + 3 * (v - 1) + num_freqs * v
  return {'body': body, 'motion': motion, 'body+motion': body + motion}[family]
