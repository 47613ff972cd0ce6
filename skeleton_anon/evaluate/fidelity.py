"""How far a changed dataset is from its original: audit.json's `fidelity`.

Privacy numbers mean nothing without the price paid for them: noise that destroys the motion
hides everything. Every quantity is measured over the original's valid frames of present
persons (an anonymizer that writes into padding is not rewarded for it), in the data's units:
  rmse                   per-coordinate root mean squared error (baselines.recon_rmse).
  mpjpe                  mean per-joint position error (Euclidean distance per joint).
  bone_length_abs        mean |bone length change| over non-root bones and frames.
  bone_length_rel        the same relative to the original bone's length.
  bone_std_original, bone_std_changed
                         each bone's standard deviation over time, averaged: a real body's
                         bones hardly change length, so a rise means a rubbery skeleton.
  jitter_ratio           acceleration energy (mean |x[t+1] - 2x[t] + x[t-1]|^2) of the changed
                         data over the original's: above 1 means added shake.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.layouts import Layout
from skeleton_anon.data.transforms import CHUNK, bone_lengths, valid_mask
from skeleton_anon.evaluate.baselines import recon_rmse


def _masked_time_std(values: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
  """Sum over (sample, person, bone) of the std over valid frames, and how many there were."""
  m = mask[..., None].astype(np.float64)                               # [n, M, T, 1]
  count = m.sum(axis=2)                                                # [n, M, 1]
  mean = (values * m).sum(axis=2) / np.maximum(count, 1)
  var = (((values - mean[:, :, None]) ** 2) * m).sum(axis=2) / np.maximum(count, 1)
  keep = np.broadcast_to(count > 1, var.shape)
  return float(np.sqrt(var)[keep].sum()), int(keep.sum())


def fidelity(original: np.ndarray, changed: np.ndarray, lengths: np.ndarray,
             layout: Layout) -> dict:
  """The fidelity block (see the module docstring) of `changed` against `original`."""
  if original.shape != changed.shape:
    raise ValueError(f'shapes differ: {original.shape} vs {changed.shape}')
  bones = np.asarray([j for j in range(layout.num_joints) if j != layout.root])
  sums = dict.fromkeys(('mpjpe', 'joints', 'abs', 'rel', 'bones', 'std_o', 'std_c', 'std_n',
                        'acc_o', 'acc_c'), 0.0)
  for lo in range(0, original.shape[0], CHUNK):
    a = np.asarray(original[lo:lo + CHUNK], np.float64)
    b = np.asarray(changed[lo:lo + CHUNK], np.float64)
    mask = valid_mask(a, lengths[lo:lo + CHUNK])                       # [n, M, T]
    err = np.linalg.norm(a - b, axis=-1)[mask]                         # [K, V]
    sums['mpjpe'] += err.sum()
    sums['joints'] += err.size
    la = bone_lengths(a, layout.parents)[..., bones]
    lb = bone_lengths(b, layout.parents)[..., bones]
    change = np.abs(lb - la)[mask]
    base = la[mask]
    sums['abs'] += change.sum()
    # Relative to the bone, floored at 1% of the median bone: a joint that sits on its
    # parent (zero-length bone) would otherwise make one frame count like a million; 1% of the
    # median bone keeps every real bone's ratio exact.
    floor = 0.01 * float(np.median(base)) if base.size else 1e-6
    sums['rel'] += (change / np.maximum(base, max(floor, 1e-6))).sum()
    sums['bones'] += change.size
    for key, values in (('std_o', la), ('std_c', lb)):
      total, n = _masked_time_std(values, mask)
      sums[key] += total
      sums['std_n'] += n if key == 'std_o' else 0
    triple = mask[:, :, 2:] & mask[:, :, 1:-1] & mask[:, :, :-2]
    for key, x in (('acc_o', a), ('acc_c', b)):
      acc = x[:, :, 2:] - 2 * x[:, :, 1:-1] + x[:, :, :-2]
      sums[key] += float((acc ** 2).sum(axis=-1)[triple].sum())
  div = lambda a, b: float(a / b) if b else float('nan')
  return {
      'rmse': recon_rmse(original, changed, lengths),
      'mpjpe': div(sums['mpjpe'], sums['joints']),
      'bone_length_abs': div(sums['abs'], sums['bones']),
      'bone_length_rel': div(sums['rel'], sums['bones']),
      'bone_std_original': div(sums['std_o'], sums['std_n']),
      'bone_std_changed': div(sums['std_c'], sums['std_n']),
      'jitter_ratio': div(sums['acc_c'], sums['acc_o']),
  }
