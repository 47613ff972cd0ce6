"""Fixtures for the evaluation tests: small skeleton arrays with known structure."""

import numpy as np
import pytest

from skeleton_anon.data.layouts import get_layout


def posed_skeletons(n=6, m=2, t=12, layout_name='ntu25', seed=0, second_person=(1,)):
  """Random poses built from random bone lengths (per sample) and directions (per frame).

  Returns (x [N, M, T, V, 3] float32, lengths [N], bone_lengths [N, V]). Person 1 is present only
  in the samples listed in `second_person`; frames beyond lengths are zero.
  """
  layout = get_layout(layout_name)
  rng = np.random.default_rng(seed)
  v = layout.num_joints
  bone_len = rng.uniform(0.05, 0.4, size=(n, v)).astype(np.float32)
  bone_len[:, layout.root] = 0
  direction = rng.standard_normal((n, m, t, v, 3)).astype(np.float32)
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  x = np.zeros((n, m, t, v, 3), np.float32)
  x[..., layout.root, :] = rng.uniform(-1, 1, size=(n, m, t, 3))
  for j in layout.topological_order:
    if j == layout.root:
      continue
    p = layout.parents[j]
    x[..., j, :] = x[..., p, :] + direction[..., j, :] * bone_len[:, None, None, j, None]
  lengths = rng.integers(t // 2, t + 1, size=n).astype(np.int32)
  lengths[0] = t
  x *= (np.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]   # zero padded frames
  absent = np.ones(n, bool)
  absent[list(second_person)] = False
  if m > 1:
    x[absent, 1:] = 0
  return x, lengths, bone_len


@pytest.fixture
def make_skeletons():
  return posed_skeletons
