"""Synthetic motion: actions as joint-angle trajectories, and each subject's own way of moving.

An action is a list of components, each a smooth curve on one channel of
`synthetic_body.CHANNELS` over the action's phase s in [0, 1]: `hold` (raise, hold, lower),
`osc` (an oscillation inside a hold window), `bounce` (|sin|, for steps and hops) and `step`
(a lasting change such as sitting down or turning round). A subject's style changes how an
action is performed (amplitude per channel, timing, lag of the distal joints) and adds a
posture (stoop, arm carriage, stance) and an idle sway that is there in every action; that
is the identity and gender signal outside the bone lengths.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from skeleton_anon.data.synthetic_body import CHANNEL, CHANNELS, ROOT_CHANNELS

# Actions beyond the hand-written bank are drawn from this fixed seed, so action k means the
# same movement in every generated dataset.
_PROCEDURAL_SEED = 20211130
# Channels that lag behind the movement's start: the distal end follows the proximal one.
_DISTAL = ('l_elbow', 'r_elbow', 'l_wrist', 'r_wrist', 'l_knee', 'r_knee', 'l_ankle',
           'r_ankle', 'head_flex')
# Anatomical limits (degrees) applied after style offsets.
_LIMITS = {'l_elbow': (-5, 160), 'r_elbow': (-5, 160), 'l_knee': (-5, 150),
           'r_knee': (-5, 150)}


@dataclasses.dataclass(frozen=True)
class Component:
  """One smooth curve on one channel; times are fractions of the action's duration."""
  channel: str
  kind: str            # 'hold' | 'osc' | 'bounce' | 'step'
  amp: float           # degrees, or metres for the root translation channels
  s0: float = 0.15
  s1: float = 0.85
  ramp: float = 0.12
  cycles: float = 1.0
  phase: float = 0.0


@dataclasses.dataclass(frozen=True)
class Action:
  name: str
  components: tuple[Component, ...]
  duration: float = 0.85   # typical length as a fraction of the clip's frames


def _both(kind, dof, amp, **kw):
  return (Component('l_' + dof, kind, amp, **kw), Component('r_' + dof, kind, amp, **kw))


def _hold(ch, amp, **kw):
  return (Component(ch, 'hold', amp, **kw),)


def _osc(ch, amp, cycles, **kw):
  return (Component(ch, 'osc', amp, cycles=cycles, **kw),)


def _act(name, *parts, duration=0.85):
  """An action from components and tuples of components."""
  flat = []
  for part in parts:
    flat.extend([part] if isinstance(part, Component) else part)
  return Action(name, tuple(flat), duration)


# Hand-written actions, the first ten chosen to be clearly different from each other.
BANK = (
    _act('wave_right_hand', _hold('r_sh_abd', 130), _hold('r_elbow', 40),
         _osc('r_elbow', 30, 4, s0=0.25, s1=0.8), _osc('r_sh_twist', 15, 4, s0=0.25, s1=0.8)),
    _act('clap', _both('hold', 'sh_flex', 55), _both('hold', 'elbow', 60),
         _both('hold', 'sh_abd', 8), _both('osc', 'sh_abd', 14, cycles=5, s0=0.25, s1=0.8)),
    _act('sit_down', _both('step', 'hip_flex', 95, s0=0.1, s1=0.6),
         _both('step', 'knee', 105, s0=0.1, s1=0.6), _hold('spine_flex', 25, s1=0.7),
         _both('hold', 'sh_flex', 40, s1=0.7), duration=0.9),
    _act('jump_up', _both('hold', 'knee', 55, s0=0.1, s1=0.42, ramp=0.1),
         _both('hold', 'hip_flex', 40, s0=0.1, s1=0.42, ramp=0.1),
         _hold('root_lift', 0.28, s0=0.38, s1=0.62, ramp=0.1),
         _both('hold', 'sh_flex', 150, s0=0.3, s1=0.7), duration=0.7),
    _act('kick_right', _hold('r_hip_flex', 75, s0=0.3, s1=0.62, ramp=0.1),
         _hold('r_knee', 65, s0=0.2, s1=0.45, ramp=0.1), _both('hold', 'sh_abd', 25),
         _hold('spine_flex', -10, s0=0.3, s1=0.62), duration=0.75),
    _act('bow', _hold('spine_flex', 35), _hold('chest_flex', 25), _hold('neck_flex', 12),
         _both('hold', 'sh_flex', 12)),
    _act('walk_forward', (Component('root_fwd', 'step', 1.3, s0=0.05, s1=0.95),),
         _osc('l_hip_flex', 25, 2, s0=0.05, s1=0.95),
         _osc('r_hip_flex', 25, 2, s0=0.05, s1=0.95, phase=np.pi),
         (Component('l_knee', 'bounce', 40, s0=0.05, s1=0.95, cycles=2),
          Component('r_knee', 'bounce', 40, s0=0.05, s1=0.95, cycles=2, phase=np.pi / 2)),
         _osc('l_sh_flex', 20, 2, s0=0.05, s1=0.95, phase=np.pi),
         _osc('r_sh_flex', 20, 2, s0=0.05, s1=0.95), _osc('chest_twist', 6, 2),
         duration=0.95),
    _act('punch_right', _hold('r_sh_flex', 80), _hold('r_elbow', 60),
         _osc('r_elbow', 50, 3, s0=0.2, s1=0.85), _osc('chest_twist', 12, 3, s0=0.2, s1=0.85),
         _hold('l_sh_flex', 50), _hold('l_elbow', 110)),
    _act('hands_on_head', _both('hold', 'sh_abd', 120), _both('hold', 'elbow', 135),
         _both('hold', 'sh_flex', 30), _hold('head_flex', 10)),
    _act('pick_up', _hold('spine_flex', 55, s1=0.8), _hold('chest_flex', 20, s1=0.8),
         _both('hold', 'knee', 35, s1=0.8), _both('hold', 'hip_flex', 30, s1=0.8),
         _hold('r_sh_flex', 60, s0=0.25, s1=0.75)),
    _act('turn_around', Component('root_yaw', 'step', 180, s0=0.15, s1=0.85),
         _osc('l_hip_flex', 12, 2), _osc('r_hip_flex', 12, 2, phase=np.pi)),
    _act('phone_call', _hold('l_sh_flex', 25), _hold('l_sh_abd', 30), _hold('l_elbow', 145),
         _hold('head_side', -10)),
    _act('point_forward', _hold('r_sh_flex', 90, s0=0.2, s1=0.8), _hold('chest_twist', 8)),
    _act('throw', _hold('r_sh_abd', 100, s0=0.1, s1=0.5), _hold('r_elbow', 90, s0=0.1, s1=0.45),
         _hold('r_sh_flex', 100, s0=0.45, s1=0.75, ramp=0.08),
         _hold('chest_twist', -20, s0=0.1, s1=0.45), _hold('chest_twist', 20, s0=0.45, s1=0.8),
         duration=0.75),
    _act('cross_arms', _both('hold', 'sh_flex', 60), _both('hold', 'elbow', 110),
         _both('hold', 'sh_abd', -20)),
    _act('salute', _hold('r_sh_abd', 80), _hold('r_elbow', 130), _hold('r_sh_flex', 30),
         _hold('r_sh_twist', 40)),
    _act('hop_on_left_leg', _hold('r_hip_flex', 40), _hold('r_knee', 80),
         (Component('root_lift', 'bounce', 0.08, cycles=4),), _both('hold', 'sh_abd', 30)),
    _act('raise_both_arms', _both('hold', 'sh_flex', 165, s0=0.2, s1=0.8)),
    _act('side_bend', _osc('spine_side', 25, 1.5), _osc('chest_side', 12, 1.5),
         _both('hold', 'sh_abd', 20)),
    _act('jog_in_place', (Component('l_hip_flex', 'bounce', 50, cycles=4),
                          Component('r_hip_flex', 'bounce', 50, cycles=4, phase=np.pi / 2)),
         (Component('l_knee', 'bounce', 70, cycles=4),
          Component('r_knee', 'bounce', 70, cycles=4, phase=np.pi / 2)),
         _both('hold', 'elbow', 90), _osc('l_sh_flex', 25, 4), _osc('r_sh_flex', 25, 4,
                                                                     phase=np.pi),
         (Component('root_lift', 'bounce', 0.04, cycles=8),)),
    _act('check_watch', _hold('l_sh_flex', 40), _hold('l_elbow', 100), _hold('l_sh_twist', 30),
         _hold('head_flex', 25)),
    _act('wipe_face', _both('hold', 'sh_flex', 50), _both('hold', 'elbow', 130),
         _both('osc', 'sh_abd', 10, cycles=3)),
    _act('stretch_arms_sideways', _both('hold', 'sh_abd', 90), _hold('chest_flex', -10)),
    _act('kick_left', _hold('l_hip_flex', 75, s0=0.3, s1=0.62, ramp=0.1),
         _hold('l_knee', 65, s0=0.2, s1=0.45, ramp=0.1), _both('hold', 'sh_abd', 25),
         duration=0.75),
)


def get_actions(num_actions: int) -> tuple[Action, ...]:
  """The first `num_actions` actions: the bank, then procedural ones (fixed, not seeded)."""
  extra = tuple(_procedural_action(k) for k in range(len(BANK), num_actions))
  return (BANK + extra)[:num_actions]


def _procedural_action(index: int) -> Action:
  """A random but fixed movement: an arm gesture, a leg movement or a trunk movement."""
  rng = np.random.default_rng([_PROCEDURAL_SEED, index])
  parts = []
  families = rng.choice(['arm', 'arm', 'leg', 'trunk'], size=rng.integers(1, 3), replace=False)
  for family in families:
    s0, s1 = rng.uniform(0.05, 0.3), rng.uniform(0.65, 0.95)
    if family == 'arm':
      sides = {'l': ['l_'], 'r': ['r_'], 'b': ['l_', 'r_']}[rng.choice(['l', 'r', 'b'])]
      flex, abd = rng.uniform(20, 160), rng.uniform(-20, 120)
      elbow, twist = rng.uniform(0, 140), rng.uniform(-40, 40)
      cycles, amp = int(rng.integers(1, 6)), rng.uniform(15, 35)
      wobble = str(rng.choice(['sh_flex', 'sh_abd', 'elbow']))
      for side in sides:
        parts += [Component(side + 'sh_flex', 'hold', flex, s0, s1),
                  Component(side + 'sh_abd', 'hold', abd, s0, s1),
                  Component(side + 'elbow', 'hold', elbow, s0, s1),
                  Component(side + 'sh_twist', 'hold', twist, s0, s1)]
        if rng.random() < 0.6:
          parts.append(Component(side + wobble, 'osc', amp, s0, s1, cycles=cycles))
    elif family == 'leg':
      side = rng.choice(['l_', 'r_'])
      parts += [Component(side + 'hip_flex', 'hold', rng.uniform(20, 80), s0, s1),
                Component(side + 'knee', 'hold', rng.uniform(0, 100), s0, s1),
                Component(side + 'hip_abd', 'hold', rng.uniform(0, 35), s0, s1)]
      if rng.random() < 0.4:
        parts.append(Component('root_lift', 'bounce', rng.uniform(0.03, 0.1), s0, s1,
                               cycles=int(rng.integers(2, 5))))
    else:
      kind = str(rng.choice(['hold', 'osc']))
      for channel in rng.choice(['spine_flex', 'spine_side', 'chest_twist'], 2, replace=False):
        parts.append(Component(str(channel), kind, rng.uniform(15, 45) * rng.choice([-1, 1]),
                               s0, s1, cycles=int(rng.integers(1, 4))))
  return Action(f'procedural_{index + 1}', tuple(parts), float(rng.uniform(0.7, 0.95)))


@dataclasses.dataclass(frozen=True)
class Styles:
  """How each of P subjects moves.

  tempo [P] (>1 is faster), amplitude [P], gain [P, C] per channel, lag [P] (phase delay of the
  distal joints), posture [P, C] constant offsets (degrees), sway [P] idle lateral sway
  amplitude (degrees) and sway_cycles [P].
  """
  tempo: np.ndarray
  amplitude: np.ndarray
  gain: np.ndarray
  lag: np.ndarray
  posture: np.ndarray
  sway: np.ndarray
  sway_cycles: np.ndarray

  def take(self, index) -> 'Styles':
    """The styles of the subjects at `index` (one entry per performance)."""
    return Styles(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def sample_styles(rng: np.random.Generator, female: np.ndarray) -> Styles:
  """One motion style per subject; arm carriage, stance width and sway differ by sex."""
  female = np.asarray(female, bool)
  p, c = female.shape[0], len(CHANNELS)
  posture = np.zeros((p, c))

  def put(channel, mean, sd, mean_female=None):
    mean_f = mean if mean_female is None else mean_female
    posture[:, CHANNEL[channel]] = np.where(female, mean_f, mean) + rng.normal(0, sd, p)

  put('spine_flex', 3, 4)
  put('chest_flex', 4, 5)
  put('neck_flex', 5, 5)
  put('head_flex', 0, 4)
  put('head_side', 0, 3)
  carriage = np.where(female, 6.0, 11.0) + rng.normal(0, 4, p)
  elbows = np.where(female, 17.0, 12.0) + rng.normal(0, 6, p)
  stance = np.where(female, 1.5, 4.5) + rng.normal(0, 2, p)
  for side in ('l_', 'r_'):
    posture[:, CHANNEL[side + 'sh_abd']] = carriage + rng.normal(0, 2, p)
    posture[:, CHANNEL[side + 'elbow']] = elbows + rng.normal(0, 3, p)
    posture[:, CHANNEL[side + 'hip_abd']] = stance + rng.normal(0, 1, p)
    posture[:, CHANNEL[side + 'sh_twist']] = rng.normal(0, 8, p)
    posture[:, CHANNEL[side + 'knee']] = np.abs(rng.normal(3, 2, p))
    posture[:, CHANNEL[side + 'shrug']] = rng.normal(0, 3, p)
  gain = np.exp(rng.normal(0, 0.12, (p, c)))
  gain[:, [CHANNEL[r] for r in ROOT_CHANNELS]] = 1.0
  return Styles(
      tempo=np.exp(rng.normal(0, 0.12, p)),
      amplitude=np.exp(rng.normal(0, 0.1, p)),
      gain=gain,
      lag=rng.uniform(0.0, 0.05, p),
      posture=posture,
      sway=np.abs(np.where(female, 3.0, 1.5) + rng.normal(0, 1.0, p)),
      sway_cycles=rng.uniform(1.0, 3.0, p),
  )


def _smoothstep(u):
  u = np.clip(u, 0.0, 1.0)
  return u * u * (3 - 2 * u)


def _curve(comp: Component, s: np.ndarray) -> np.ndarray:
  """The component's unit-amplitude curve at phases s [..., T]."""
  if comp.kind == 'step':
    return _smoothstep((s - comp.s0) / max(comp.s1 - comp.s0, 1e-3))
  ramp = max(comp.ramp, 1e-3)
  window = _smoothstep((s - comp.s0) / ramp) * (1 - _smoothstep((s - comp.s1 + ramp) / ramp))
  if comp.kind == 'hold':
    return window
  wave = 2 * np.pi * comp.cycles * (s - comp.s0) + comp.phase
  if comp.kind == 'osc':
    return window * np.sin(wave)
  if comp.kind == 'bounce':
    return window * np.abs(np.sin(wave / 2))
  raise ValueError(f'unknown component kind {comp.kind!r}')


def action_channels(action: Action, phase: np.ndarray, styles: Styles,
                    variation: np.ndarray, height: np.ndarray) -> np.ndarray:
  """Channels [P, T, C] for P performances of one action.

  Args:
    action: the action.
    phase: [P, T] the action's phase per frame (0 at the first frame, 1 at the last valid one).
    styles: the performers' styles (fields indexed per performance).
    variation: [P] per-repetition amplitude factor.
    height: [P] metres; root translations scale with body size.
  """
  p, t = phase.shape
  out = np.zeros((p, t, len(CHANNELS)))
  amp = styles.amplitude * variation
  for comp in action.components:
    ch = CHANNEL[comp.channel]
    s = phase - styles.lag[:, None] if comp.channel in _DISTAL else phase
    scale = comp.amp * amp
    if comp.channel in ('root_side', 'root_fwd', 'root_lift'):
      scale = comp.amp * variation * height / 1.7
    elif comp.channel == 'root_yaw':
      scale = np.full(p, comp.amp)
    out[:, :, ch] += (scale * styles.gain[:, ch])[:, None] * _curve(comp, s)
  out += styles.posture[:, None, :]
  sway = styles.sway[:, None] * np.sin(2 * np.pi * styles.sway_cycles[:, None] * phase)
  out[:, :, CHANNEL['spine_side']] += sway
  out[:, :, CHANNEL['root_side']] += 0.004 * sway        # weight shift, metres per degree
  for channel, (lo, hi) in _LIMITS.items():
    out[:, :, CHANNEL[channel]] = np.clip(out[:, :, CHANNEL[channel]], lo, hi)
  return out
