"""Joint layouts: joint names, bones, and the roles preprocessing needs.

Everything that depends on the skeleton (graphs, normalisation, retargeting, drawing) reads it
from a `Layout`, never from a hard-coded 25, so NTU's Kinect v2 order, Kinect v1's 20 joints and a
user's own skeleton all run through the same code.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from skeleton_anon.errors import DataError


@dataclasses.dataclass(frozen=True)
class Layout:
  """A skeleton: joints, bones (child, parent) and the joints preprocessing relies on.

  Attributes:
    name: registry name (`ntu25`, `kinect_v1_20`) or `custom`.
    joint_names: one name per joint, in the order joints appear in the data.
    bones: (child, parent) pairs, 0-based; together they form a tree rooted at `root`.
    root: the tree's root (pelvis / spine base); retargeting rebuilds bones outward from it.
    center: the joint the graph's spatial partitioning (ST-GCN, 2s-AGCN) measures distance from.
    norm_center: joint subtracted in pre_normalization (2s-AGCN uses SpineMid).
    norm_zaxis: (bottom, top) joints whose bone is rotated onto +z, or None (custom layouts).
    norm_xaxis: (right, left) shoulder joints whose bone is rotated onto +x, or None.
  """
  name: str
  joint_names: tuple[str, ...]
  bones: tuple[tuple[int, int], ...]
  root: int = 0
  center: int = 0
  norm_center: int = 0
  norm_zaxis: tuple[int, int] | None = None
  norm_xaxis: tuple[int, int] | None = None

  @property
  def num_joints(self) -> int:
    return len(self.joint_names)

  @property
  def edges(self) -> np.ndarray:
    """int32 [E, 2] of (child, parent): the `edges` key of the dataset file."""
    return np.asarray(self.bones, dtype=np.int32).reshape(-1, 2)

  @property
  def parents(self) -> np.ndarray:
    """int32 [V]: each joint's parent along the tree from `root`; the root's parent is itself."""
    return _tree_parents(self.num_joints, self.bones, self.root, self.name)

  @property
  def topological_order(self) -> np.ndarray:
    """Joints ordered so that every parent comes before its children (root first)."""
    parents = self.parents
    depth = np.zeros(self.num_joints, dtype=np.int64)
    for j in range(self.num_joints):
      k, d = j, 0
      while k != self.root:
        k, d = parents[k], d + 1
      depth[j] = d
    return np.argsort(depth, kind='stable').astype(np.int32)


def _tree_parents(num_joints: int, bones: Sequence[tuple[int, int]], root: int,
                  name: str) -> np.ndarray:
  """Orients the undirected bone list away from `root` (breadth-first)."""
  neighbours: list[list[int]] = [[] for _ in range(num_joints)]
  for a, b in bones:
    neighbours[a].append(b)
    neighbours[b].append(a)
  parents = np.full(num_joints, -1, dtype=np.int32)
  parents[root] = root
  frontier = [root]
  while frontier:
    nxt = []
    for j in frontier:
      for k in neighbours[j]:
        if parents[k] < 0:
          parents[k] = j
          nxt.append(k)
    frontier = nxt
  if (parents < 0).any():
    missing = np.flatnonzero(parents < 0).tolist()
    raise DataError(None, f'layout {name!r}: joints {missing} are not connected to root {root}')
  return parents


# Kinect v2 (NTU RGB+D, ETRI-activity3D). Bones as (child, parent), 1-based in the NTU paper.
_NTU25_NAMES = (
    'spine_base', 'spine_mid', 'neck', 'head', 'shoulder_left', 'elbow_left', 'wrist_left',
    'hand_left', 'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right', 'hip_left',
    'knee_left', 'ankle_left', 'foot_left', 'hip_right', 'knee_right', 'ankle_right',
    'foot_right', 'spine_shoulder', 'hand_tip_left', 'thumb_left', 'hand_tip_right',
    'thumb_right')
_NTU25_BONES_1BASED = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
    (20, 19), (22, 23), (23, 8), (24, 25), (25, 12))

# Kinect v1 (MSR Action3D, UTKinect, ...): 20 joints.
_KINECT_V1_NAMES = (
    'hip_center', 'spine', 'shoulder_center', 'head', 'shoulder_left', 'elbow_left',
    'wrist_left', 'hand_left', 'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right',
    'hip_left', 'knee_left', 'ankle_left', 'foot_left', 'hip_right', 'knee_right',
    'ankle_right', 'foot_right')
_KINECT_V1_BONES = (
    (1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10),
    (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18))

LAYOUTS: dict[str, Layout] = {
    'ntu25': Layout(
        name='ntu25', joint_names=_NTU25_NAMES,
        bones=tuple((a - 1, b - 1) for a, b in _NTU25_BONES_1BASED),
        root=0, center=20, norm_center=1, norm_zaxis=(0, 1), norm_xaxis=(8, 4)),
    'kinect_v1_20': Layout(
        name='kinect_v1_20', joint_names=_KINECT_V1_NAMES, bones=_KINECT_V1_BONES,
        root=0, center=2, norm_center=1, norm_zaxis=(0, 1), norm_xaxis=(8, 4)),
}


def custom_layout(edges, num_joints: int, *, root: int = 0, path=None) -> Layout:
  """A user's skeleton from its bone list (the dataset file's `edges`).

  The graph and retargeting use the bones; normalisation only centres on `root` (no known
  spine or shoulders to rotate by).
  """
  edges = np.asarray(edges)
  if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
    raise DataError(path, f'custom layout needs edges of shape [E, 2], got {edges.shape}',
                    key='edges')
  if not np.issubdtype(edges.dtype, np.integer):
    raise DataError(path, f'edges must be integers, got {edges.dtype}', key='edges')
  if edges.min() < 0 or edges.max() >= num_joints:
    raise DataError(path, f'edges name joints outside 0..{num_joints - 1}', key='edges')
  if (edges[:, 0] == edges[:, 1]).any():
    raise DataError(path, 'edges contain a self-loop', key='edges')
  bones = tuple((int(a), int(b)) for a, b in edges)
  layout = Layout(name='custom', joint_names=tuple(f'joint_{i}' for i in range(num_joints)),
                  bones=bones, root=root, center=root, norm_center=root)
  try:
    layout.parents  # connected tree check, with the file's name in the error
  except DataError as e:
    raise DataError(path, e.problem, key='edges') from None
  return layout


def get_layout(name: str, *, edges=None, num_joints: int | None = None, path=None) -> Layout:
  """Looks up a registered layout, or builds `custom` from `edges`."""
  if name == 'custom':
    if edges is None or num_joints is None:
      raise DataError(path, "layout 'custom' needs an 'edges' array", key='edges')
    return custom_layout(edges, num_joints, path=path)
  if name not in LAYOUTS:
    raise DataError(path, f'unknown layout {name!r}; known: {sorted(LAYOUTS) + ["custom"]}',
                    key='layout')
  layout = LAYOUTS[name]
  if num_joints is not None and num_joints != layout.num_joints:
    raise DataError(path, f'layout {name!r} has {layout.num_joints} joints but the data has '
                    f'{num_joints}', key='x')
  return layout
