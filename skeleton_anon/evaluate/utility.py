"""Utility that collapse cannot fake: how much variety the anonymized data keeps within an action.

An anonymizer that maps every performance of an action to one prototype keeps action accuracy and
erases identity while destroying the data. Within-action diversity catches it: the mean distance
between two performances of the same action after anonymization, relative to the same mean on
the original data. Both sides are compared as postures (root-relative, bones retargeted to one
set of lengths, time-normalised), so neither body proportions, nor where a person stood, nor how
long a performance lasted counts as variety.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import Layout
from skeleton_anon.data.rows import take

NUM_FRAMES = 32
MAX_PAIRS_PER_ACTION = 2000
# Samples per chunk of posture_trajectories: whole chunks of transforms.retarget's.
_CHUNK = 4 * transforms.CHUNK


def posture_trajectories(x: np.ndarray, lengths: np.ndarray, layout: Layout,
                         target_lengths: np.ndarray, num_frames: int = NUM_FRAMES) -> np.ndarray:
  """float32 [N, num_frames * M * V * C]: retargeted, root-relative, time-resampled skeletons.

  Computed chunk by chunk (x may be a memory map or `data.rows.Rows`): only the small result is
  held whole. Every step is per sample, so the chunks change nothing.
  """
  lengths = np.asarray(lengths)
  parts = []
  for lo in range(0, len(x), _CHUNK):
    chunk, n = np.asarray(x[lo:lo + _CHUNK], np.float32), lengths[lo:lo + _CHUNK]
    moved = transforms.retarget(chunk, n, layout, target_lengths)
    moved = moved - moved[..., layout.root:layout.root + 1, :]
    moved = np.where(transforms.valid_mask(chunk, n)[..., None, None], moved, 0)
    parts.append(transforms.resample(moved, n, num_frames).reshape(len(chunk), -1))
  if not parts:
    return np.zeros((0, num_frames * int(np.prod(x.shape[1:])) // max(1, x.shape[2])),
                    np.float32)
  return np.concatenate(parts, axis=0)


def _mean_pair_distance(a: np.ndarray, b: np.ndarray, pairs: np.ndarray) -> tuple[float, float]:
  """Mean Euclidean distance (per frame and joint, RMS form) of the same pairs in a and b."""
  scale = np.sqrt(a.shape[1] / 3.0)     # distances per joint-frame, comparable across sizes
  da = np.linalg.norm(a[pairs[:, 0]] - a[pairs[:, 1]], axis=1) / scale
  db = np.linalg.norm(b[pairs[:, 0]] - b[pairs[:, 1]], axis=1) / scale
  return float(da.mean()), float(db.mean())


def within_action_diversity(original: np.ndarray, anonymized: np.ndarray, lengths: np.ndarray,
                            action: np.ndarray, layout: Layout, target_lengths: np.ndarray, *,
                            seed: int = 0, max_pairs: int = MAX_PAIRS_PER_ACTION,
                            anonymized_lengths: np.ndarray | None = None) -> dict:
  """{'ratio', 'original', 'anonymized', 'per_action'}: mean same-action pair distances.

  ratio = anonymized / original, the mean over actions of at least two samples; the pairs (all of
  them, or `max_pairs` drawn with `seed` per action) are the same on both sides. 1 keeps the
  variety, 0 is a prototype per action. Distances are in the data's units per joint and frame.
  anonymized_lengths: the anonymized samples' own lengths (default `lengths`: the same
  durations); every trajectory is resampled to one length, so the two sides compare either way.
  """
  lengths, action = np.asarray(lengths), np.asarray(action)
  anonymized_lengths = lengths if anonymized_lengths is None else np.asarray(anonymized_lengths)
  rng = np.random.default_rng(seed)
  per_action, ratios, dist_a, dist_b = {}, [], [], []
  for label in np.unique(action):
    members = np.flatnonzero(action == label)
    if len(members) < 2:
      continue
    i, j = np.triu_indices(len(members), k=1)
    if len(i) > max_pairs:
      pick = rng.choice(len(i), max_pairs, replace=False)
      i, j = i[pick], j[pick]
    # One action's trajectories at a time (x may be a memory map or Rows of one): memory is
    # bounded by the largest action, not the dataset.
    a = posture_trajectories(take(original, members), lengths[members], layout, target_lengths)
    b = posture_trajectories(take(anonymized, members), anonymized_lengths[members], layout,
                             target_lengths)
    orig, anon = _mean_pair_distance(a, b, np.stack([i, j], axis=1))
    per_action[int(label)] = {'original': orig, 'anonymized': anon,
                              'ratio': anon / orig if orig > 0 else float('nan')}
    if orig > 0:
      ratios.append(anon / orig)
    dist_a.append(orig)
    dist_b.append(anon)
  if not ratios:
    return {'ratio': None, 'original': None, 'anonymized': None, 'per_action': per_action}
  return {'ratio': float(np.mean(ratios)), 'original': float(np.mean(dist_a)),
          'anonymized': float(np.mean(dist_b)), 'per_action': per_action}
