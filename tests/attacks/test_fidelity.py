"""Fidelity against the original, on cases with known answers."""

import numpy as np
import pytest

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.evaluate.fidelity import fidelity

LAYOUT = get_layout('ntu25')


def _walk(n=3, t=12, seed=0):
  rng = np.random.default_rng(seed)
  x = np.cumsum(rng.normal(scale=0.01, size=(n, 1, t, 25, 3)), axis=2).astype(np.float32)
  x += rng.normal(size=(1, 1, 1, 25, 3)).astype(np.float32)
  lengths = np.array([t, t - 2, t - 5], np.int32)
  x[np.arange(t)[None, None, :] >= lengths[:, None, None]] = 0
  return x, lengths


def test_rigid_shift_changes_positions_only():
  x, lengths = _walk()
  mask = (np.arange(x.shape[2])[None, :] < lengths[:, None])[:, None, :, None, None]
  moved = np.where(mask, x + np.float32(0.1), 0).astype(np.float32)
  out = fidelity(x, moved, lengths, LAYOUT)
  assert out['rmse'] == pytest.approx(0.1, rel=1e-4)
  assert out['mpjpe'] == pytest.approx(0.1 * np.sqrt(3), rel=1e-4)
  assert out['bone_length_abs'] == pytest.approx(0, abs=1e-5)
  assert out['bone_length_rel'] == pytest.approx(0, abs=1e-4)
  assert out['jitter_ratio'] == pytest.approx(1.0, rel=1e-3)
  assert out['bone_std_changed'] == pytest.approx(out['bone_std_original'], rel=1e-3)


def test_scaled_skeleton_and_added_shake():
  x, lengths = _walk()
  out = fidelity(x, 1.5 * x, lengths, LAYOUT)
  assert out['bone_length_rel'] == pytest.approx(0.5, rel=1e-4)
  assert out['jitter_ratio'] == pytest.approx(2.25, rel=1e-3)
  noisy = x + np.where(x != 0, np.random.default_rng(1).normal(scale=0.05, size=x.shape), 0)
  out = fidelity(x, noisy.astype(np.float32), lengths, LAYOUT)
  assert out['jitter_ratio'] > 5 and out['bone_std_changed'] > out['bone_std_original']
  with pytest.raises(ValueError, match='shapes differ'):
    fidelity(x, x[:1], lengths, LAYOUT)
