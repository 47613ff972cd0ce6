"""Synthetic bodies on the `ntu25` skeleton: proportions per subject and forward kinematics.

Body frame: metres, y up, the person faces -z (towards a camera looking along +z) and their right
hand is on +x, as in Kinect v2 camera space. Every bone (parent -> child joint) can rotate
relative to its parent bone; a joint's position is its parent's plus the bone's rest offset
turned by the accumulated rotation, walked in `Layout.topological_order`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from skeleton_anon.data.layouts import Layout, get_layout

NTU25 = get_layout('ntu25')
_J = {name: i for i, name in enumerate(NTU25.joint_names)}

# Rest pose: per joint, (direction from its parent in the layout tree, length as a fraction of
# standing height). Fractions follow textbook anthropometry (Drillis & Contini) adjusted to
# where Kinect v2 puts its joints. The layout chains hand -> thumb -> hand tip, so the tip's
# offset is taken from the thumb.
_REST = {
    'spine_mid': ((0, 1, 0), 0.155),
    'spine_shoulder': ((0, 1, 0.03), 0.13),
    'neck': ((0, 1, 0), 0.04),
    'head': ((0, 1, -0.08), 0.065),
    'shoulder_left': ((-1, -0.15, 0), 0.10),
    'elbow_left': ((0, -1, 0), 0.17),
    'wrist_left': ((0, -1, 0), 0.145),
    'hand_left': ((0, -1, 0), 0.045),
    'thumb_left': ((0.35, -0.55, -0.75), 0.03),
    'hand_tip_left': ((-0.25, -1, 0.6), 0.045),
    'shoulder_right': ((1, -0.15, 0), 0.10),
    'elbow_right': ((0, -1, 0), 0.17),
    'wrist_right': ((0, -1, 0), 0.145),
    'hand_right': ((0, -1, 0), 0.045),
    'thumb_right': ((-0.35, -0.55, -0.75), 0.03),
    'hand_tip_right': ((0.25, -1, 0.6), 0.045),
    'hip_left': ((-1, -0.35, 0), 0.052),
    'knee_left': ((0, -1, 0), 0.24),
    'ankle_left': ((0, -1, 0), 0.245),
    'foot_left': ((0, -0.3, -1), 0.075),
    'hip_right': ((1, -0.35, 0), 0.052),
    'knee_right': ((0, -1, 0), 0.24),
    'ankle_right': ((0, -1, 0), 0.245),
    'foot_right': ((0, -0.3, -1), 0.075),
}
SHOULDER_BONES = ('shoulder_left', 'shoulder_right')
HIP_BONES = ('hip_left', 'hip_right')
FEET = tuple(_J[n] for n in ('ankle_left', 'foot_left', 'ankle_right', 'foot_right'))
# Height of the lowest foot joint above the floor, as a fraction of height.
FOOT_CLEARANCE = 0.02

# Degrees of freedom: (name, bone = child joint, axis, sign). The sign turns the anatomical
# angle (positive = flexion forward, abduction outward, leaning right) into a rotation about the
# body-frame axis for that side of the body.
DOFS = (
    ('spine_flex', 'spine_mid', 'x', -1), ('spine_side', 'spine_mid', 'z', -1),
    ('spine_twist', 'spine_mid', 'y', 1),
    ('chest_flex', 'spine_shoulder', 'x', -1), ('chest_side', 'spine_shoulder', 'z', -1),
    ('chest_twist', 'spine_shoulder', 'y', 1),
    ('neck_flex', 'neck', 'x', -1), ('head_flex', 'head', 'x', -1),
    ('head_side', 'head', 'z', -1),
    ('l_shrug', 'shoulder_left', 'z', -1), ('r_shrug', 'shoulder_right', 'z', 1),
    ('l_sh_flex', 'elbow_left', 'x', 1), ('l_sh_abd', 'elbow_left', 'z', -1),
    ('l_sh_twist', 'elbow_left', 'y', 1), ('l_elbow', 'wrist_left', 'x', 1),
    ('l_wrist', 'hand_left', 'x', 1),
    ('r_sh_flex', 'elbow_right', 'x', 1), ('r_sh_abd', 'elbow_right', 'z', 1),
    ('r_sh_twist', 'elbow_right', 'y', -1), ('r_elbow', 'wrist_right', 'x', 1),
    ('r_wrist', 'hand_right', 'x', 1),
    ('l_hip_flex', 'knee_left', 'x', 1), ('l_hip_abd', 'knee_left', 'z', -1),
    ('l_knee', 'ankle_left', 'x', -1), ('l_ankle', 'foot_left', 'x', 1),
    ('r_hip_flex', 'knee_right', 'x', 1), ('r_hip_abd', 'knee_right', 'z', 1),
    ('r_knee', 'ankle_right', 'x', -1), ('r_ankle', 'foot_right', 'x', 1),
)
# Root channels: facing (degrees about y) and translation (metres, body frame at rest).
ROOT_CHANNELS = ('root_yaw', 'root_side', 'root_lift', 'root_fwd')
CHANNELS = tuple(d[0] for d in DOFS) + ROOT_CHANNELS
CHANNEL = {name: i for i, name in enumerate(CHANNELS)}


@dataclasses.dataclass(frozen=True)
class Bodies:
  """Body shape of a group of people: heights [P] and rest offsets [P, V, 3] (metres)."""
  height: np.ndarray
  offsets: np.ndarray

  def take(self, index) -> 'Bodies':
    """The bodies at `index` (one entry per performance)."""
    return Bodies(height=self.height[index], offsets=self.offsets[index])


def sample_bodies(rng: np.random.Generator, female: np.ndarray, *,
                  bone_variation: float = 0.035) -> Bodies:
  """Draws one body per entry of `female` (bool [P]).

  Height from a sex-specific normal distribution; shoulders (clavicles) narrower and hips wider
  for women relative to height; every bone also gets an individual log-normal factor, shared
  mostly between the left and right side.
  """
  female = np.asarray(female, bool)
  p = female.shape[0]
  height = np.where(female, rng.normal(1.63, 0.065, p), rng.normal(1.76, 0.07, p))
  names = NTU25.joint_names
  own = np.exp(rng.normal(0.0, bone_variation, (p, len(names))))
  # A right-side bone copies its left twin's factor plus a small asymmetry.
  for j, name in enumerate(names):
    if name.endswith('_right'):
      twin = _J[name.replace('_right', '_left')]
      own[:, j] = own[:, twin] * np.exp(rng.normal(0.0, bone_variation / 4, p))
  shoulder = np.where(female, 0.92, 1.0) * np.exp(rng.normal(0.0, 0.04, p))
  hip = np.where(female, 1.12, 1.0) * np.exp(rng.normal(0.0, 0.04, p))
  offsets = np.zeros((p, len(names), 3))
  for name, (direction, fraction) in _REST.items():
    j = _J[name]
    unit = np.asarray(direction, float) / np.linalg.norm(direction)
    scale = height * fraction * own[:, j]
    if name in SHOULDER_BONES:
      scale = scale * shoulder
    elif name in HIP_BONES:
      scale = scale * hip
    offsets[:, j] = scale[:, None] * unit
  return Bodies(height=height, offsets=offsets)


def rotations(angle: np.ndarray, axis: str) -> np.ndarray:
  """Rotation matrices [..., 3, 3] about a body axis for angles [...] in radians."""
  return np.moveaxis(_rotations_leading(angle, axis), (0, 1), (-2, -1))


def _rotations_leading(angle: np.ndarray, axis: str) -> np.ndarray:
  """Rotation matrices with the matrix axes first, [3, 3, ...].

  Forward kinematics multiplies millions of 3x3 matrices; written out element by element on
  this layout that is several times faster than `np.matmul` on [..., 3, 3] stacks.
  """
  c, s = np.cos(angle), np.sin(angle)
  one, zero = np.ones_like(c), np.zeros_like(c)
  rows = {
      'x': ((one, zero, zero), (zero, c, -s), (zero, s, c)),
      'y': ((c, zero, s), (zero, one, zero), (-s, zero, c)),
      'z': ((c, -s, zero), (s, c, zero), (zero, zero, one)),
  }[axis]
  return np.array(rows)


def _matmul_leading(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """a @ b for [3, 3, ...] stacks."""
  return np.array([[a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]
                    for j in range(3)] for i in range(3)])


def _bone_rotations(channels: np.ndarray) -> dict[int, np.ndarray]:
  """Local rotation per moving bone, R_x(flex) @ R_z(abduction) @ R_y(twist), [3, 3, P, T]."""
  per_bone: dict[int, dict[str, np.ndarray]] = {}
  for i, (_, bone, axis, sign) in enumerate(DOFS):
    per_bone.setdefault(_J[bone], {})[axis] = np.deg2rad(channels[..., i]) * sign
  local = {}
  for bone, axes in per_bone.items():
    rot = None
    for axis in ('x', 'z', 'y'):
      if axis in axes:
        r = _rotations_leading(axes[axis], axis)
        rot = r if rot is None else _matmul_leading(rot, r)
    local[bone] = rot
  return local


def forward_kinematics(channels: np.ndarray, bodies: Bodies,
                       layout: Layout = NTU25) -> np.ndarray:
  """Joint positions [P, T, V, 3] (body frame, feet on the floor y=0) from channels [P, T, C].

  `channels` holds `CHANNELS`: joint angles in degrees, the root's yaw in degrees and its
  translation in metres. The body is lowered or raised frame by frame so that the lowest foot
  joint touches the floor, then `root_lift` lifts it (jumps, hops).
  """
  channels = np.asarray(channels, np.float32)
  p, t = channels.shape[:2]
  parents = layout.parents
  local = _bone_rotations(channels)
  yaw = np.deg2rad(channels[..., CHANNEL['root_yaw']])
  global_rot = {layout.root: _rotations_leading(yaw, 'y')}
  pos = np.zeros((3, layout.num_joints, p, t), np.float32)
  offsets = bodies.offsets.astype(np.float32)
  for j in layout.topological_order:
    j = int(j)
    if j == layout.root:
      continue
    rot = global_rot[int(parents[j])]
    if j in local:
      rot = _matmul_leading(rot, local[j])
    global_rot[j] = rot
    off = offsets[:, j, :, None]                                 # [P, 3, 1]
    for i in range(3):
      pos[i, j] = (pos[i, parents[j]] + rot[i, 0] * off[:, 0] + rot[i, 1] * off[:, 1] +
                   rot[i, 2] * off[:, 2])
  pos = pos.transpose(2, 3, 1, 0)                                # [P, T, V, 3]
  # Root translation is expressed in the body's starting frame (walking forward = -z).
  shift = np.stack([channels[..., CHANNEL['root_side']],
                    np.zeros((p, t), np.float32),
                    -channels[..., CHANNEL['root_fwd']]], -1)
  floor = pos[:, :, FEET, 1].min(-1) - (FOOT_CLEARANCE * bodies.height)[:, None]
  shift[..., 1] = channels[..., CHANNEL['root_lift']] - floor
  return np.ascontiguousarray(pos + shift[:, :, None, :])
