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
from skeleton_anon.data.synthetic_body import (NTU25, Bodies, forward_kinematics, rotations,
                                               sample_bodies)
from skeleton_anon.data.synthetic_motion import (Styles, action_channels, get_actions,
                                                 sample_styles)
from skeleton_anon.errors import ConfigError

GENDER_NAMES = ('male', 'female')
# NTU RGB+D 60 has 11 two-person actions among 60.
_TWO_PERSON_SHARE = 11 / 60
# Sensor noise multipliers per joint: Kinect tracks the trunk best, hand tips and thumbs worst.
_NOISY_JOINTS = {'hand_left': 1.5, 'hand_right': 1.5, 'foot_left': 1.5, 'foot_right': 1.5,
                 'ankle_left': 1.3, 'ankle_right': 1.3, 'hand_tip_left': 2.5,
                 'thumb_left': 2.5, 'hand_tip_right': 2.5, 'thumb_right': 2.5}
_JOINT_NOISE = np.array([_NOISY_JOINTS.get(n, 1.0) for n in NTU25.joint_names], np.float32)


def make_synthetic(*, num_subjects: int = 20, num_actions: int = 10, repetitions: int = 2,
                   num_views: int = 3, num_frames: int = 64, num_persons: int = 1,
                   seed: int = 0, noise: float = 0.005, joint_bias: float = 0.015,
                   depth_scale: float = 0.01, missing_frames: float = 0.03) -> SkeletonDataset:
  """Generates the whole dataset in memory (see `iter_synthetic` for the arguments).

  Returns:
    A `SkeletonDataset` of N = subjects x actions x repetitions x views samples, layout
    'ntu25', x float32 [N, num_persons, num_frames, 25, 3] in camera coordinates (metres),
    gender 0 male / 1 female, split None (the split rules decide), NTU-style names, and meta
    with 'camera', 'replication', 'setup' (1-based, as in the names), 'action_names',
    'gender_names' and 'height'.
  """
  kwargs = dict(num_subjects=num_subjects, num_actions=num_actions, repetitions=repetitions,
                num_views=num_views, num_frames=num_frames, num_persons=num_persons,
                seed=seed, noise=noise, joint_bias=joint_bias, depth_scale=depth_scale,
                missing_frames=missing_frames)
  total = num_subjects * num_actions * repetitions * num_views
  x = np.zeros((total, num_persons, num_frames, NTU25.num_joints, 3), np.float32)
  parts = []
  start = 0
  for part in iter_synthetic(**kwargs):
    n = part.num_samples
    x[start:start + n] = part.x
    parts.append(part.with_x(np.empty((n, 0))))   # labels only; coordinates already copied
    start += n

  def cat(field):
    return np.concatenate([getattr(p, field) for p in parts])

  meta = dict(parts[0].meta)
  for key in ('camera', 'replication', 'setup', 'height'):
    meta[key] = np.concatenate([p.meta[key] for p in parts])
  return SkeletonDataset(x=x, lengths=cat('lengths'), action=cat('action'),
                         subject=cat('subject'), layout='ntu25', gender=cat('gender'),
                         split=None, names=cat('names'), meta=meta)


def iter_synthetic(*, num_subjects: int = 20, num_actions: int = 10, repetitions: int = 2,
                   num_views: int = 3, num_frames: int = 64, num_persons: int = 1,
                   seed: int = 0, noise: float = 0.005, joint_bias: float = 0.015,
                   depth_scale: float = 0.01,
                   missing_frames: float = 0.03) -> Iterator[SkeletonDataset]:
  """Yields the dataset one subject at a time; same content as `make_synthetic`.

  Args:
    num_subjects: performers (half of them female, rounded down).
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
  facing = rng.normal(0, 10, p)
  world = [_place(main, facing, np.zeros(p))]
  present_until = [lengths]
  if num_persons >= 2:
    partner, until = _partners(subject, actions, interaction, perf_action, phase, lengths,
                               female.shape[0], bodies, styles, rng)
    gap = rng.uniform(0.9, 1.3, p)
    is_pair = interaction[perf_action]
    world[0] = np.where(is_pair[:, None, None, None],
                        _place(main, np.full(p, -60.0), -gap / 2), world[0])
    world.append(_place(partner, np.full(p, 60.0), gap / 2))
    present_until.append(np.where(is_pair, until, 0))
  for _ in range(2, num_persons):
    world.append(np.zeros_like(world[0]))
    present_until.append(np.zeros(p, np.int32))
  world = np.stack(world, 1)                                         # [P, M, T, V, 3]
  until = np.stack(present_until, 1)                                 # [P, M]
  x = _film(world, views, rng, **{k: v for k, v in sensor.items() if k != 'seed'})
  # Frames after a person's presence (and after the clip) are zero; tracking may start late.
  frame = np.arange(t)
  late = np.where(rng.random((p, v_count)) < sensor['missing_frames'],
                  rng.integers(1, 4, (p, v_count)), 0)
  visible = np.broadcast_to(frame < until[:, None, :, None],
                            (p, v_count) + until.shape[1:] + (t,)).copy()   # [P, views, M, T]
  visible[:, :, 0] &= frame >= late[:, :, None]
  x *= visible[..., None, None]
  x = x.reshape((p * v_count,) + x.shape[2:])
  camera = np.tile(np.arange(1, v_count + 1), p)
  action = np.repeat(perf_action, v_count)
  rep = np.repeat(perf_rep, v_count)
  names = np.array([f'S001C{c:03d}P{subject + 1:03d}R{r + 1:03d}A{a + 1:03d}'
                    for c, r, a in zip(camera, rep, action)])
  n = p * v_count
  meta = {'source': 'synthetic', 'seed': sensor['seed'],
          'action_names': [a.name for a in actions], 'gender_names': list(GENDER_NAMES),
          'camera': camera.astype(np.int32), 'replication': (rep + 1).astype(np.int32),
          'setup': np.ones(n, np.int32),
          'height': np.full(n, bodies.height[subject], np.float32)}
  return SkeletonDataset(
      x=x.astype(np.float32), lengths=np.repeat(lengths, v_count), action=action.astype(np.int32),
      subject=np.full(n, subject, np.int32), layout='ntu25',
      gender=np.full(n, int(female[subject]), np.int32), names=names, meta=meta)


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
  channels += posture_jitter[:, None, :]
  return forward_kinematics(channels, bodies)


def _partners(subject, actions, interaction, perf_action, phase, lengths, num_subjects,
              bodies, styles, rng):
  """The second person of each performance: another subject doing the same action a little
  later; present in interactions only, and leaving early in 30% of them."""
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
  out = np.einsum('pij,ptvj->ptvi', rot, pos)
  out[..., 0] += side[:, None, None].astype(np.float32)
  return out


def _film(world, views, rng, *, noise, joint_bias, depth_scale, missing_frames):
  """Camera-space recordings [P, views, M, T, V, 3] of world positions [P, M, T, V, 3]."""
  del missing_frames   # applied by the caller together with presence
  p = world.shape[0]
  v_count = len(views)
  distance = rng.uniform(2.6, 3.6, p)
  height = rng.uniform(0.8, 1.3, p)
  lateral = rng.normal(0, 0.15, p)
  tilt = rng.uniform(-12, -3, (p, v_count))
  # Rotate the scene about the vertical axis (camera angle), then tilt the camera.
  yaw = rotations(np.deg2rad(np.broadcast_to(views, (p, v_count))), 'y')
  pitch = rotations(np.deg2rad(tilt), 'x')
  cam = (pitch @ yaw).astype(np.float32)                             # [P, views, 3, 3]
  shift = np.stack([lateral, -height, distance], -1)                 # [P, 3]
  out = np.einsum('pcij,pmtvj->pcmtvi', cam, world)
  out += np.einsum('pcij,pj->pci', pitch, shift)[:, :, None, None, None, :].astype(np.float32)
  m, t, v = world.shape[1:4]
  scale = 1 + rng.normal(0, depth_scale, (p, v_count, m, 1, 1, 1))
  bias = rng.normal(0, joint_bias, (p, v_count, m, 1, v, 3)) * _JOINT_NOISE[:, None]
  jitter = rng.normal(0, noise, (p, v_count, m, t, v, 3)) * _JOINT_NOISE[:, None]
  return (out * scale + bias + jitter).astype(np.float32)
