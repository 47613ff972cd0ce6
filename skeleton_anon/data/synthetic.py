"""A realistic, seeded synthetic skeleton dataset in NTU style (the embedded default data).

Each subject has a body (height, sex-dependent shoulder/hip proportions, individual bone
lengths) and a way of moving (tempo, amplitude per joint, posture, sway). Every performance of an
action (subject x action x repetition) is driven through forward kinematics on the `ntu25` tree
and filmed by several cameras at once, as in NTU RGB+D, so the views of one performance share
the motion but not the sensor error. The sensor adds a per-recording depth scale error, a
per-recording joint bias (Kinect's joint estimates are offset in a pose- and view-dependent way)
and frame-by-frame jitter; hands and feet are noisier. Because of that bias, bone lengths
measured from one recording identify a subject only sometimes: identity and gender are
learnable, from proportions and from motion, but not trivially.

Names follow NTU (`S001C002P003R001A004`), so camera, replication and subject parse as for the
real data. Generation goes subject by subject (`iter_synthetic`), which bounds memory.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.data.synthetic_body import (CHANNELS, NTU25, ROOT_CHANNELS, Bodies,
                                               forward_kinematics, rotations, sample_bodies)
from skeleton_anon.data.synthetic_motion import (Styles, action_channels, get_actions,
                                                 sample_styles)
from skeleton_anon.errors import ConfigError

# What the generated keypoints are: a depth sensor's 3D skeletons or a 2D estimator's.
KEYPOINTS = ('ntu25_3d', 'coco17_2d')
# Gender codes as the ETRI reader writes them (the reference code's `gender == 'm'`).
GENDER_NAMES = ('female', 'male')
_LABEL_KEYS = ('lengths', 'action', 'subject', 'gender', 'names', 'camera', 'setup',
               'replication')
# NTU RGB+D 60 has 11 two-person actions among 60.
_TWO_PERSON_SHARE = 11 / 60
# Sensor noise multipliers per joint: Kinect tracks the trunk best, hand tips and thumbs worst.
_NOISY_JOINTS = {'hand_left': 1.5, 'hand_right': 1.5, 'foot_left': 1.5, 'foot_right': 1.5,
                 'ankle_left': 1.3, 'ankle_right': 1.3, 'hand_tip_left': 2.5,
                 'thumb_left': 2.5, 'hand_tip_right': 2.5, 'thumb_right': 2.5}
# Posture jitter between repetitions applies to joint angles, never to the root's translation.
_JOINT_CHANNELS = np.array([c not in ROOT_CHANNELS for c in CHANNELS])
_JOINT_NOISE = np.array([_NOISY_JOINTS.get(n, 1.0) for n in NTU25.joint_names], np.float32)


def make_synthetic(*, num_subjects: int = 20, num_actions: int = 10, repetitions: int = 2,
                   num_views: int = 3, num_frames: int = 64, num_persons: int = 1,
                   seed: int = 0, noise: float = 0.005, joint_bias: float = 0.015,
                   depth_scale: float = 0.01, missing_frames: float = 0.03,
                   keypoints: str = 'ntu25_3d') -> SkeletonDataset:
  """Generates the whole dataset in memory (see `iter_synthetic` for the arguments).

  keypoints: 'ntu25_3d' (a depth sensor's skeletons, below) or 'coco17_2d' (what a 2D pose
  estimator would report from the same recordings: COCO-17 pixels with scores, see
  `synthetic_2d.pose_estimator_view`).

  Returns:
    A `SkeletonDataset` of N = subjects x actions x repetitions x views samples, layout
    'ntu25', x float32 [N, num_persons, num_frames, 25, 3] in camera coordinates (metres),
    gender 0 female / 1 male (as the ETRI reader), split None (the split rules decide),
    NTU-style names, camera, setup and replication (1-based, as in the names), and meta with
    'action_names', 'gender_names' and 'height' (the performer's, metres).
  """
  if keypoints not in KEYPOINTS:
    raise ConfigError(f'synthetic keypoints must be one of {list(KEYPOINTS)}, got {keypoints!r}')
  kwargs = dict(num_subjects=num_subjects, num_actions=num_actions, repetitions=repetitions,
                num_views=num_views, num_frames=num_frames, num_persons=num_persons,
                seed=seed, noise=noise, joint_bias=joint_bias, depth_scale=depth_scale,
                missing_frames=missing_frames)
  total = num_subjects * num_actions * repetitions * num_views
  x = np.zeros((total, num_persons, num_frames, NTU25.num_joints, 3), np.float32)
  # Coordinates go straight into the one big array; only the small per-sample labels are
  # collected and joined at the end.
  labels = {key: [] for key in _LABEL_KEYS}
  heights = []
  start = 0
  meta = {}
  for part in iter_synthetic(**kwargs):
    x[start:start + part.num_samples] = part.x
    start += part.num_samples
    for key in _LABEL_KEYS:
      labels[key].append(getattr(part, key))
    heights.append(part.meta['height'])
    meta = part.meta
  meta = dict(meta, height=np.concatenate(heights))
  ds = SkeletonDataset(x=x, layout='ntu25', split=None, meta=meta,
                       **{key: np.concatenate(v) for key, v in labels.items()})
  if keypoints == 'coco17_2d':
    from skeleton_anon.data import synthetic_2d  # pylint: disable=g-import-not-at-top
    ds = synthetic_2d.pose_estimator_view(ds, seed=seed)
  return ds


def iter_synthetic(*, num_subjects: int = 20, num_actions: int = 10, repetitions: int = 2,
                   num_views: int = 3, num_frames: int = 64, num_persons: int = 1,
                   seed: int = 0, noise: float = 0.005, joint_bias: float = 0.015,
                   depth_scale: float = 0.01,
                   missing_frames: float = 0.03) -> Iterator[SkeletonDataset]:
  """Yields the dataset one subject at a time; same content as `make_synthetic`.

  Args:
    num_subjects: performers (half of them women, rounded down).
    num_actions: action classes: a hand-written bank first, then fixed procedural actions.
    repetitions: performances of each action by each subject.
    num_views: cameras filming each performance, spread over -45..45 degrees.
    num_frames: T; a sample's length depends on the action and the performer's tempo.
    num_persons: M. With M >= 2 the last ~11/60 of the actions are two-person interactions
      (a second subject present, sometimes leaving early); in the others person 1 is absent.
    seed: everything is a function of the seed.
    noise: per-frame joint jitter (metres, standard deviation).
    joint_bias: per-recording constant offset of each joint (metres, standard deviation).
    depth_scale: per-recording relative scale error.
    missing_frames: probability that tracking starts 1-3 frames late (leading empty frames).
  """
  _check_args(num_subjects, num_actions, repetitions, num_views, num_frames, num_persons)
  actions = get_actions(num_actions)
  rng = np.random.default_rng([seed, 0])
  female = rng.permutation(num_subjects) < num_subjects // 2
  bodies = sample_bodies(rng, female)
  styles = sample_styles(rng, female)
  num_interactions = 0
  if num_persons >= 2 and num_actions >= 2:
    num_interactions = max(1, int(round(num_actions * _TWO_PERSON_SHARE)))
  interaction = np.arange(num_actions) >= num_actions - num_interactions
  views = np.linspace(-45.0, 45.0, num_views) if num_views > 1 else np.zeros(1)
  for subject in range(num_subjects):
    yield _subject_samples(
        subject, actions, interaction, repetitions, views, num_frames, num_persons,
        female, bodies, styles,
        np.random.default_rng([seed, 1, subject]),
        dict(noise=noise, joint_bias=joint_bias, depth_scale=depth_scale,
             missing_frames=missing_frames, seed=seed))


def _check_args(num_subjects, num_actions, repetitions, num_views, num_frames, num_persons):
  for name, value, low in (('num_subjects', num_subjects, 2), ('num_actions', num_actions, 1),
                           ('repetitions', repetitions, 1), ('num_views', num_views, 1),
                           ('num_frames', num_frames, 8), ('num_persons', num_persons, 1)):
    if int(value) < low:
      raise ConfigError(f'synthetic {name} must be >= {low}, got {value}')
  if num_subjects > 999 or num_actions > 999 or repetitions > 999 or num_views > 999:
    raise ConfigError('synthetic sizes above 999 do not fit NTU-style names')


def _subject_samples(subject, actions, interaction, repetitions, views, t, num_persons,
                     female, bodies: Bodies, styles: Styles, rng, sensor) -> SkeletonDataset:
  """All samples of one subject: performances through FK, then every camera's recording."""
  a_count, v_count = len(actions), len(views)
  perf_action = np.repeat(np.arange(a_count), repetitions)          # [P]
  perf_rep = np.tile(np.arange(repetitions), a_count)
  p = perf_action.shape[0]
  own = np.full(p, subject)
  # Performance-level variation: tempo, amplitude, timing warp, posture.
  tempo = styles.tempo[own] * np.exp(rng.normal(0, 0.05, p))
  duration = np.array([actions[a].duration for a in perf_action])
  lengths = np.rint(t * duration * rng.uniform(0.92, 1.08, p) / tempo)
  lengths = np.clip(lengths, max(8, t // 3), t).astype(np.int32)
  phase = _warped_phase(lengths, t, rng.normal(0, 0.1, p).clip(-0.3, 0.3))
  variation = np.exp(rng.normal(0, 0.06, p))
  posture_jitter = rng.normal(0, 1.5, (p, styles.posture.shape[1]))
  main = _perform(actions, perf_action, phase, styles.take(own), bodies.take(own), variation,
                  posture_jitter)
  cameras = _cameras(rng, p, views)
  film = dict(noise=sensor['noise'], joint_bias=sensor['joint_bias'],
              depth_scale=sensor['depth_scale'])
  # In an interaction the two people stand `gap` apart, turned towards each other.
  is_pair = interaction[perf_action] if num_persons >= 2 else np.zeros(p, bool)
  gap = rng.uniform(0.9, 1.3, p)
  facing = np.where(is_pair, -60.0, rng.normal(0, 10, p))
  x = np.zeros((p, v_count, num_persons, t, NTU25.num_joints, 3), np.float32)
  x[:, :, 0] = _film(_place(main, facing, np.where(is_pair, -gap / 2, 0.0)), cameras, rng,
                     **film)
  frame = np.arange(t)
  # Tracking may lock on a few frames late: leading empty frames for person 0.
  late = np.where(rng.random((p, v_count)) < sensor['missing_frames'],
                  rng.integers(1, 4, (p, v_count)), 0)
  x[:, :, 0] *= ((frame >= late[:, :, None]) &
                 (frame < lengths[:, None, None]))[..., None, None]
  rows = np.flatnonzero(is_pair)
  if rows.size:
    partner, until = _partners(subject, actions, perf_action[rows], phase[rows], lengths[rows],
                               female.shape[0], bodies, styles, rng)
    x[rows, :, 1] = _film(_place(partner, np.full(rows.size, 60.0), gap[rows] / 2),
                          (cameras[0][rows], cameras[1][rows]), rng, **film)
    x[rows, :, 1] *= (frame < until[:, None, None])[..., None, None]
  x = x.reshape((p * v_count,) + x.shape[2:])
  camera = np.tile(np.arange(1, v_count + 1), p)
  action = np.repeat(perf_action, v_count)
  rep = np.repeat(perf_rep, v_count)
  names = np.array([f'S001C{c:03d}P{subject + 1:03d}R{r + 1:03d}A{a + 1:03d}'
                    for c, r, a in zip(camera, rep, action)])
  n = p * v_count
  meta = {'source': 'synthetic', 'seed': sensor['seed'],
          'action_names': [a.name for a in actions], 'gender_names': list(GENDER_NAMES),
          'height': np.full(n, bodies.height[subject], np.float32)}
  return SkeletonDataset(
      x=x, lengths=np.repeat(lengths, v_count), action=action.astype(np.int32),
      subject=np.full(n, subject, np.int32), layout='ntu25',
      gender=np.full(n, 0 if female[subject] else 1, np.int32), names=names, meta=meta,
      camera=camera.astype(np.int32), setup=np.ones(n, np.int32),
      replication=(rep + 1).astype(np.int32))


def _warped_phase(lengths, t, warp):
  """Phase [P, T]: 0 at frame 0, 1 at the last valid frame, with a smooth monotone warp."""
  s = np.arange(t)[None, :] / np.maximum(lengths - 1, 1)[:, None]
  s = np.clip(s, 0.0, 1.0)
  # s + w sin(pi s) / pi has derivative 1 + w cos(pi s) > 0 for |w| < 1: still monotone.
  return s + warp[:, None] * np.sin(np.pi * s) / np.pi


def _perform(actions, perf_action, phase, styles: Styles, bodies: Bodies, variation,
             posture_jitter):
  """Body-frame joint positions [P, T, V, 3] of performances, grouped by action."""
  p, t = phase.shape
  channels = np.zeros((p, t, styles.posture.shape[1]))
  for a in np.unique(perf_action):
    rows = np.flatnonzero(perf_action == a)
    channels[rows] = action_channels(actions[a], phase[rows], styles.take(rows),
                                     variation[rows], bodies.height[rows])
  channels[..., _JOINT_CHANNELS] += posture_jitter[:, None, _JOINT_CHANNELS]
  return forward_kinematics(channels, bodies)


def _partners(subject, actions, perf_action, phase, lengths, num_subjects, bodies, styles,
              rng):
  """Second persons [P, T, V, 3] and their last frame [P]: another subject doing the same action
  a little later, leaving early in 30% of the performances."""
  p = perf_action.shape[0]
  other = (subject + rng.integers(1, num_subjects, p)) % num_subjects
  delayed = np.clip(phase - 0.05, 0.0, None)
  pos = _perform(actions, perf_action, delayed, styles.take(other), bodies.take(other),
                 np.exp(rng.normal(0, 0.06, p)), rng.normal(0, 1.5, (p, styles.posture.shape[1])))
  leaves = rng.random(p) < 0.3
  until = np.where(leaves, np.rint(lengths * rng.uniform(0.5, 0.95, p)), lengths)
  return pos, np.maximum(until, 1).astype(np.int32)


def _place(pos, yaw_deg, side):
  """Turns body-frame positions [P, T, V, 3] by `yaw_deg` [P] and moves them `side` [P] metres
  along x: the people's places on the floor."""
  rot = rotations(np.deg2rad(yaw_deg), 'y').astype(np.float32)
  out = (pos.reshape(pos.shape[0], -1, 3) @ np.swapaxes(rot, -1, -2)).reshape(pos.shape)
  out[..., 0] += side[:, None, None].astype(np.float32)
  return out


def _cameras(rng, p, views):
  """Per performance and camera: rotation [P, views, 3, 3] and translation [P, views, 3] from
  floor coordinates (person at the origin) to camera coordinates."""
  v_count = len(views)
  distance = rng.uniform(2.6, 3.6, p)
  height = rng.uniform(0.8, 1.3, p)
  lateral = rng.normal(0, 0.15, p)
  tilt = rng.uniform(-12, -3, (p, v_count))
  # Turn the scene about the vertical axis (the camera's angle), then tilt the camera.
  yaw = rotations(np.deg2rad(np.broadcast_to(views, (p, v_count))), 'y')
  pitch = rotations(np.deg2rad(tilt), 'x')
  shift = np.stack([lateral, -height, distance], -1)                 # [P, 3]
  return ((pitch @ yaw).astype(np.float32),
          np.einsum('pcij,pj->pci', pitch, shift).astype(np.float32))


def _film(world, cameras, rng, *, noise, joint_bias, depth_scale):
  """Camera-space recordings [P, views, T, V, 3] of floor-frame positions [P, T, V, 3], with
  a per-recording depth scale error and joint bias and per-frame jitter."""
  rot, shift = cameras
  p, v_count = rot.shape[:2]
  t, v = world.shape[1:3]
  # A batched matmul over (performance, view) is much faster than einsum here.
  out = (world.reshape(p, 1, t * v, 3) @ np.swapaxes(rot, -1, -2)).reshape(p, v_count, t, v, 3)
  out += shift[:, :, None, None, :]
  out *= (1 + rng.normal(0, depth_scale, (p, v_count, 1, 1, 1))).astype(np.float32)
  out += (rng.normal(0, joint_bias, (p, v_count, 1, v, 3)) *
          _JOINT_NOISE[:, None]).astype(np.float32)
  jitter = rng.standard_normal((p, v_count, t, v, 3), dtype=np.float32)
  jitter *= noise * _JOINT_NOISE[:, None]
  out += jitter
  return out
