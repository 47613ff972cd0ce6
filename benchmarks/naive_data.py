"""Straightforward per-sample data preparation: the baselines our vectorised code is timed against.

Issue "data layer" asks for parsing and pre_normalization to be measured against a plain
implementation in the same run. These are written the obvious way (a loop over lines, a loop over
samples and persons), correct on the benchmark's input, and deliberately not optimised.
"""

from __future__ import annotations

import numpy as np


def parse_skeleton_naive(path: str, num_joints: int = 25) -> np.ndarray:
  """One `.skeleton` file -> float32 [B, T, V, 3], reading it line by line."""
  with open(path) as f:
    lines = f.read().splitlines()
  num_frames = int(lines[0])
  frames, pos = [], 1
  for _ in range(num_frames):
    num_bodies = int(lines[pos])
    pos += 1
    bodies = []
    for _ in range(num_bodies):
      pos += 1  # the body-info line
      count = int(lines[pos])
      pos += 1
      joints = []
      for _ in range(count):
        values = lines[pos].split()
        joints.append([float(values[0]), float(values[1]), float(values[2])])
        pos += 1
      bodies.append(joints[:num_joints])
    frames.append(bodies)
  most = max((len(b) for b in frames), default=0)
  out = np.zeros((most, num_frames, num_joints, 3), np.float32)
  for t, bodies in enumerate(frames):
    for b, joints in enumerate(bodies):
      out[b, t] = joints
  return out


def _rotation_onto(vector: np.ndarray, target: np.ndarray) -> np.ndarray:
  """The 3x3 rotation turning `vector` onto the unit `target` (Rodrigues' formula)."""
  norm = np.linalg.norm(vector)
  if norm < 1e-6:
    return np.eye(3)
  u = vector / norm
  axis = np.cross(u, target)
  sine, cosine = np.linalg.norm(axis), float(np.dot(u, target))
  if sine < 1e-9:
    return np.eye(3)  # parallel already (anti-parallel input does not occur in the benchmark)
  k = axis / sine
  cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + sine * cross + (1 - cosine) * cross @ cross


def pre_normalize_naive(x: np.ndarray, center: int = 1, zaxis=(0, 1),
                        xaxis=(8, 4)) -> np.ndarray:
  """2s-AGCN pre_normalization, one sample and one person at a time. x: [N, M, T, V, 3]."""
  out = np.array(x, np.float32)
  for sample in out:
    if not sample.any():
      continue
    for person in sample:
      valid = person.reshape(len(person), -1).any(axis=1)
      if not valid.any():
        continue
      if not valid[0]:  # move the person's frames to the front
        kept = person[valid].copy()
        person[:] = 0
        person[:len(kept)] = kept
        valid = person.reshape(len(person), -1).any(axis=1)
      last = int(np.nonzero(valid)[0].max()) + 1
      for t in range(last, len(person)):  # repeat the valid frames to the end
        person[t] = person[t % last]
    centre = sample[0, :, center:center + 1].copy()  # [T, 1, 3]
    for person in sample:
      tracked = person.any(axis=-1, keepdims=True)
      person[:] = (person - centre) * tracked
    first = sample[0, 0]
    rot_z = _rotation_onto(first[zaxis[1]] - first[zaxis[0]], np.array([0.0, 0.0, 1.0]))
    shoulders = rot_z @ (first[xaxis[0]] - first[xaxis[1]])
    rot_x = _rotation_onto(shoulders, np.array([1.0, 0.0, 0.0]))
    rotation = (rot_x @ rot_z).astype(np.float32)
    for person in sample:
      for t in range(person.shape[0]):
        person[t] = person[t] @ rotation.T
  return out
