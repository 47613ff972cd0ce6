"""Joint layouts: joint names, bones, and the roles preprocessing needs.

Everything that depends on the skeleton (graphs, normalisation, retargeting, drawing) reads it
from a `Layout`, never from a hard-coded 25, so NTU's Kinect v2 order, Kinect v1's 20 joints, the
pose estimators' orders (COCO-17, OpenPose BODY_25, MediaPipe Pose, Human3.6M-17, SMPL-24) and a
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
    name: registry name (`ntu25`, `kinect_v1_20`, `coco17`, `h36m17`, `openpose25`,
      `mediapipe33`, `smpl24`; see `LAYOUTS`) or `custom`.
    joint_names: one name per joint, in the order joints appear in the data.
    bones: (child, parent) pairs, 0-based; together they form a tree rooted at `root`.
    root: the tree's root (pelvis / spine base; the nose in coco17 and mediapipe33, whose only
      midline joint it is); retargeting rebuilds bones outward from it.
    center: the joint the graph's spatial partitioning (ST-GCN, 2s-AGCN) measures distance from.
    norm_center: joint subtracted in pre_normalization (2s-AGCN uses SpineMid).
    norm_zaxis: (bottom, top) joints whose bone is rotated onto +z, or None (custom layouts).
    norm_xaxis: (right, left) shoulder joints whose bone is rotated onto +x, or None.
    mirror: (left joint, right joint) pairs, the subject's own left and right; joints on the
      midline appear in none. Empty for custom layouts.
  """
  name: str
  joint_names: tuple[str, ...]
  bones: tuple[tuple[int, int], ...]
  root: int = 0
  center: int = 0
  norm_center: int = 0
  norm_zaxis: tuple[int, int] | None = None
  norm_xaxis: tuple[int, int] | None = None
  mirror: tuple[tuple[int, int], ...] = ()

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
_NTU25_MIRROR = ((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19),
                 (21, 23), (22, 24))

# Kinect v1 (MSR Action3D, UTKinect, ...): 20 joints.
_KINECT_V1_NAMES = (
    'hip_center', 'spine', 'shoulder_center', 'head', 'shoulder_left', 'elbow_left',
    'wrist_left', 'hand_left', 'shoulder_right', 'elbow_right', 'wrist_right', 'hand_right',
    'hip_left', 'knee_left', 'ankle_left', 'foot_left', 'hip_right', 'knee_right',
    'ankle_right', 'foot_right')
_KINECT_V1_BONES = (
    (1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10),
    (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18))
_KINECT_V1_MIRROR = ((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19))

# The pose estimators' layouts below are given as parent tables (-1 at the root); bones are
# (joint, parent). Left and right are the subject's own, as every one of these formats uses.

# COCO-17 (HRNet, RTMPose, mmpose, pyskl). The tree is pyskl's `coco` graph: shoulders hang from
# the nose, hips from the shoulders of their side. COCO has no pelvis and the nose is its only
# midline keypoint, and a left/right-symmetric tree with one midline joint has to branch at that
# joint (a hip-hip or shoulder-shoulder link would swap ends under the mirror), so the root and
# graph centre are the nose (pyskl's centre too); every joint's parent then mirrors. Normalising
# centres on the left hip (the keypoint nearest the pelvis) and uprights the left hip-shoulder
# line.
_COCO17_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
    'left_knee', 'right_knee', 'left_ankle', 'right_ankle')
_COCO17_PARENTS = (-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14)
_COCO17_MIRROR = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# Human3.6M's 17 joints in the order of 3D lifters (VideoPose3D's h36m skeleton after removing
# its static joints, shoulders re-parented to the thorax). Joint 9 is VideoPose3D's `Neck/Nose`.
# Roles as ntu25's: graph centre thorax (where arms and neck branch), normalised on the spine.
_H36M17_NAMES = (
    'pelvis', 'right_hip', 'right_knee', 'right_foot', 'left_hip', 'left_knee', 'left_foot',
    'spine', 'thorax', 'neck_nose', 'head', 'left_shoulder', 'left_elbow', 'left_wrist',
    'right_shoulder', 'right_elbow', 'right_wrist')
_H36M17_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
_H36M17_MIRROR = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))

# OpenPose BODY_25 (doc/02_output.md); bones are its 24 rendered pairs (a tree from MidHip).
# Graph centre: the neck (ST-GCN's OpenPose centre); normalised on MidHip, up along MidHip-Neck.
_OPENPOSE25_NAMES = (
    'nose', 'neck', 'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder',
    'left_elbow', 'left_wrist', 'mid_hip', 'right_hip', 'right_knee', 'right_ankle', 'left_hip',
    'left_knee', 'left_ankle', 'right_eye', 'left_eye', 'right_ear', 'left_ear', 'left_big_toe',
    'left_small_toe', 'left_heel', 'right_big_toe', 'right_small_toe', 'right_heel')
_OPENPOSE25_PARENTS = (1, 8, 1, 2, 3, 1, 5, 6, -1, 8, 9, 10, 8, 12, 13, 0, 0, 15, 16, 14, 19, 14,
                       11, 22, 11)
_OPENPOSE25_MIRROR = ((5, 2), (6, 3), (7, 4), (12, 9), (13, 10), (14, 11), (16, 15), (18, 17),
                      (19, 22), (20, 23), (21, 24))

# MediaPipe Pose's 33 landmarks. Its drawing connections have cycles (hand and foot triangles)
# and left-right links; the tree keeps wrist->pinky/index/thumb, ankle->heel/foot_index, hangs
# the mouth corners and shoulders from the nose and the hips from the shoulders. Like COCO it has
# no midline joint but the nose, so the same choices hold (root and centre: nose).
_MEDIAPIPE33_NAMES = (
    'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye',
    'right_eye_outer', 'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky',
    'right_pinky', 'left_index', 'right_index', 'left_thumb', 'right_thumb', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'left_heel',
    'right_heel', 'left_foot_index', 'right_foot_index')
_MEDIAPIPE33_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16,
                        15, 16, 11, 12, 23, 24, 25, 26, 27, 28, 27, 28)
_MEDIAPIPE33_MIRROR = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
                       (17, 18), (19, 20), (21, 22), (23, 24), (25, 26), (27, 28), (29, 30),
                       (31, 32))

# SMPL's 24 joints and kinematic tree (kintree_table). Graph centre: spine3 (neck and collars
# branch there); normalised on spine2, the mid-torso joint like Kinect's spine_mid.
_SMPL24_NAMES = (
    'pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2',
    'left_ankle', 'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck', 'left_collar',
    'right_collar', 'head', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist', 'left_hand', 'right_hand')
_SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20,
                   21)
_SMPL24_MIRROR = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21),
                  (22, 23))


def _from_parents(name: str, names, parents, **roles) -> Layout:
  """A registered layout from its parent table (the root's entry is -1)."""
  roots = [j for j, p in enumerate(parents) if p < 0]
  if len(names) != len(parents) or len(roots) != 1:
    raise ValueError(f'layout {name!r}: {len(names)} names, {len(parents)} parents, '
                     f'roots {roots}')
  (root,) = roots
  bones = tuple((j, p) for j, p in enumerate(parents) if p >= 0)
  return Layout(name=name, joint_names=names, bones=bones, root=root, **roles)


LAYOUTS: dict[str, Layout] = {
    'ntu25': Layout(
        name='ntu25', joint_names=_NTU25_NAMES,
        bones=tuple((a - 1, b - 1) for a, b in _NTU25_BONES_1BASED),
        root=0, center=20, norm_center=1, norm_zaxis=(0, 1), norm_xaxis=(8, 4),
        mirror=_NTU25_MIRROR),
    'kinect_v1_20': Layout(
        name='kinect_v1_20', joint_names=_KINECT_V1_NAMES, bones=_KINECT_V1_BONES,
        root=0, center=2, norm_center=1, norm_zaxis=(0, 1), norm_xaxis=(8, 4),
        mirror=_KINECT_V1_MIRROR),
    'coco17': _from_parents(
        'coco17', _COCO17_NAMES, _COCO17_PARENTS, center=0, norm_center=11,
        norm_zaxis=(11, 5), norm_xaxis=(6, 5), mirror=_COCO17_MIRROR),
    'h36m17': _from_parents(
        'h36m17', _H36M17_NAMES, _H36M17_PARENTS, center=8, norm_center=7, norm_zaxis=(0, 7),
        norm_xaxis=(14, 11), mirror=_H36M17_MIRROR),
    'openpose25': _from_parents(
        'openpose25', _OPENPOSE25_NAMES, _OPENPOSE25_PARENTS, center=1, norm_center=8,
        norm_zaxis=(8, 1), norm_xaxis=(2, 5), mirror=_OPENPOSE25_MIRROR),
    'mediapipe33': _from_parents(
        'mediapipe33', _MEDIAPIPE33_NAMES, _MEDIAPIPE33_PARENTS, center=0, norm_center=23,
        norm_zaxis=(23, 11), norm_xaxis=(12, 11), mirror=_MEDIAPIPE33_MIRROR),
    'smpl24': _from_parents(
        'smpl24', _SMPL24_NAMES, _SMPL24_PARENTS, center=9, norm_center=6, norm_zaxis=(0, 6),
        norm_xaxis=(17, 16), mirror=_SMPL24_MIRROR),
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
