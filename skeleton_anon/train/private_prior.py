"""A person-level differentially private fit of the style prior (models/style_prior.py).

The closed-form style prior reads its medians, means, covariances and classifier straight off the
training people; one person can weigh a lot in them (an action's Gaussian is fitted from ~19
sequences on a 10-person set). This fit releases nothing but Gaussian noisy sums of per-person
vectors of bounded norm (train/dp.py), so the whole fitted prior is (epsilon, delta)-DP with a
person as the unit: adding or removing everything one person recorded changes each sum by at
most its clip. What is public: the layout, the action vocabulary (the label set), the encoding
length `frames` and the code basis (the `frequencies` lowest cosines of time, per joint and
coordinate: data-independent, so it costs nothing). Everything else is estimated privately:

  round 1 (weight 0.1)  a histogram of each person's log2 skeleton size (sum of their median
                        bone lengths), octave bins: its noisy mode is the unit U (the fit
                        refuses when the mode does not stand clear of the noise: too few
                        people for this epsilon);
  round 2 (weight 0.8)  in units of U, one noisy sum each of: the people (a count), each
                        person's median bone lengths, their mean root position, the mean code
                        of all their sequences (their posture) and, per action, how the mean
                        code of their sequences of it differs from their posture;
  round 3 (weight 0.1)  three spreads around round 2's estimates, one number per person each:
                        of their codes around their actions' means, of their bones and of their
                        place.

Every action's mean is divided by the count of all people (per-action counts would cost more
than they give): an action some people never did has its mean shrunk towards the posture, which
the decoder's renormalised directions mostly absorb.

Round 2's means and round 3's spreads give the prior: one Gaussian per action in the code space
with a diagonal covariance (the total spread divided over the coordinates as the actions' means
differ along them: post-processing, free), a nearest-mean action classifier in the same space,
and population bodies and places (vary_body). Inputs are moved to the private placement without
a rotation (a private reference posture would cost more budget than it gives).

Clips are fixed in units of U and of the code's exact bounds (a unit bone direction has code
norm <= 1), times the `clip` knob, never read off the data. The price: on 30 people the noise
on an action's mean code is of the order of the mean itself at epsilon = 8 (docs/privacy.md);
the guarantee needs many more people to be cheap.
"""

from __future__ import annotations

import math

import numpy as np

from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models.style_prior import StylePrior, place
from skeleton_anon.train import dp

KNOBS = ('frames', 'frequencies', 'clip', 'vary_body')
DEFAULT_KNOBS = dict(frames=32, frequencies=3, clip=0.5, vary_body=1.0)
WEIGHTS = dict(size=0.1, people=0.05, bones=0.15, place=0.1, posture=0.2, deviation=0.3,
               spread=0.1)
SIZE_OCTAVES = (-12, 24)         # 2.4e-4 to 1.7e7 units: metres, millimetres, pixels
# The size histogram's mode must exceed the noise by this many of its standard deviations.
SIZE_MODE_MARGIN = 3.0
# An action's mean code differs from a person's posture by at most this fraction of a code's
# bound (MSRC-12: median 0.35, largest 0.61 of 30 people x 12 gestures).
DEVIATION_CLIP = 0.5
# Clips before the knob: bones (their vector / U: U is about their sum), place (mean root / U:
# a Kinect 3 m away, or a person in the middle of a camera image, is about 1), the spreads
# (squared distances in the same units: people's bones differ by a few hundredths of U, their
# places by under one U).
BONE_CLIP, PLACE_CLIP, BONE_SPREAD_CLIP, PLACE_SPREAD_CLIP = 1.5, 2.0, 0.02, 1.0
# The root's trajectory around its own mean, in units of U, is clipped to this code norm (a
# quarter of the skeleton's summed bones: about 1 m of RMS travel for a Kinect recording).
ROOT_CLIP = 0.25
VARIANCE_FLOOR = 1e-4
# Post-processing (free under DP) that keeps noisy bodies human: the bones' total stays within
# the octave of U that the size histogram chose (its modal people are there), and one draw's
# bones vary around the private means by at most this relative spread (people's proportions
# differ by about a tenth; more is the noise of a small population).
MAX_BONE_SPREAD = 0.25


def _plausible_bones(bone_mean: np.ndarray, layout: Layout) -> np.ndarray:
  """The private mean bones [V] (in units of U) with no negative bone, no root bone and a total
  within [2^-0.5, 2^0.5] (U is the centre of the size histogram's modal octave)."""
  bones = np.maximum(bone_mean, 0.0)
  bones[layout.root] = 0.0
  total = bones.sum()
  if total <= 0:
    raise ConfigError('private style prior: the noisy bone lengths are all zero; too few people '
                      'for this epsilon')
  return bones * np.clip(total, 2 ** -0.5, 2 ** 0.5) / total


def check_request(arch: str, epsilon: float, delta: float) -> None:
  """ConfigError, before any work, for an anonymizer.epsilon that cannot be honoured: a budget
  out of range, or an anonymizer with no private fit (0: privacy off, nothing to check)."""
  if float(epsilon) == 0.0:
    return
  dp.check_budget(float(epsilon), float(delta))
  if arch != 'style_prior':
    raise ConfigError(f'anonymizer.epsilon: only arch style_prior has a private fit '
                      f'(configs/recommended_private.py); {arch!r} has none yet')


def code_basis(num_persons: int, frames: int, joints: int, channels: int,
               frequencies: int) -> np.ndarray:
  """[D, K] public code basis, D = M*frames*V*C, K = M*frequencies*V*C: per person slot, joint
  and coordinate the `frequencies` lowest DCT-II cosines of time, scaled to norm sqrt(frames)
  (a code coordinate is then a time average: a unit direction's code has norm <= 1)."""
  t = (np.arange(frames) + 0.5) / frames
  cosines = np.stack([np.cos(np.pi * k * t) for k in range(min(frequencies, frames))], 1)
  cosines /= np.linalg.norm(cosines, axis=0, keepdims=True)
  cosines *= math.sqrt(frames)                                              # [F, k]
  eye = np.eye(num_persons * joints * channels).reshape(num_persons, joints, channels, -1)
  basis = np.einsum('tk,mvcj->mtvcjk', cosines, eye)
  return basis.reshape(num_persons * frames * joints * channels, -1)


def _person_rows(subject: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
  people = np.unique(subject)
  return people, [np.flatnonzero(subject == p) for p in people]


def _size_unit(mech: dp.Mechanism, bones: np.ndarray) -> float:
  """U: the noisy mode of the people's log2 skeleton sizes (round 1), at the centre of its
  octave; ConfigError when the mode is not SIZE_MODE_MARGIN noise deviations above zero."""
  lo, hi = SIZE_OCTAVES
  size = np.maximum(bones.sum(1), 1e-30)
  index = np.clip(np.floor(np.log2(size)) - lo, 0, hi - lo - 1).astype(int)
  counts = mech.noisy_sum('size histogram', np.eye(hi - lo)[index], 1.0, WEIGHTS['size'])
  noise = mech.releases[-1]['noise_std']
  if noise > 0 and counts.max() < SIZE_MODE_MARGIN * noise:
    raise ConfigError(f'private style prior: too few people for epsilon (the noisy skeleton-size '
                      f'histogram peaks at {counts.max():.1f} against noise {noise:.1f}); '
                      'raise anonymizer.epsilon or add people')
  return float(2.0 ** (lo + np.argmax(counts) + 0.5))


def fit_private_style_prior(x: np.ndarray, lengths: np.ndarray, action: np.ndarray,
                            subject: np.ndarray, layout: Layout, *, epsilon: float,
                            delta: float, frames: int = 32, frequencies: int = 3,
                            clip: float = 1.0, vary_body: float = 1.0, seed: int = 0,
                            noise_seed: int | None = None) -> tuple[StylePrior, dict]:
  """(StylePrior, guarantee) fitted with person-level (epsilon, delta)-DP (module docstring).

  subject: who performed each sample (the unit of privacy); epsilon = inf runs the same fit
  without noise (the structure's own cost, for comparison). noise_seed fixes the noise for
  tests only. guarantee: what anonymizer.json and report.json record.
  """
  dp.check_budget(epsilon, delta)
  if frames < 2 or frequencies < 1 or not clip > 0:
    raise ConfigError(f'private style prior: needs frames >= 2, frequencies >= 1 and clip > 0, '
                      f'got {frames}, {frequencies}, {clip}')
  x = np.asarray(x, np.float32)
  lengths = np.asarray(lengths, np.int32)
  action, subject = np.asarray(action), np.asarray(subject)
  z = dp.noise_multiplier(epsilon, delta)
  mech = dp.Mechanism(z, dp.secret_rng(noise_seed))
  people, mine = _person_rows(subject)
  actions = np.unique(action)
  rows = np.searchsorted(actions, action)
  n_act, m, v, c = len(actions), x.shape[1], x.shape[3], x.shape[4]

  # Round 1: the unit.
  bones = np.stack([transforms.median_bone_lengths(x[i], lengths[i], layout) for i in mine])
  unit = _size_unit(mech, bones)

  # Round 2: counts, bodies, places and the actions' mean codes, per person.
  _, roots = transforms.first_person_mean_posture(x, lengths, layout)
  basis = code_basis(m, frames, v, c, frequencies)
  k = basis.shape[1]
  own = place(x, lengths, layout, np.zeros((v, c)), np.zeros(c), align=False)  # root mean at 0
  encoded = transforms.direction_encoding(own, lengths, layout, frames).reshape(len(x), -1)
  codes = encoded.astype(np.float64) @ basis / frames                         # [N, K]
  root_cols = np.zeros(k, bool)
  root_cols.reshape(m, v, c, -1)[:, layout.root] = True
  codes[:, root_cols] /= unit
  codes[:, root_cols] = dp.clip_rows(codes[:, root_cols], ROOT_CLIP * clip)
  bound = math.sqrt(m * (v - 1) + (ROOT_CLIP * clip) ** 2)                     # one code's norm
  person_roots = np.stack([roots[idx].mean(0) for idx in mine])
  postures = np.stack([codes[idx].mean(0) for idx in mine])
  deviations = np.zeros((len(people), n_act, k))
  for p, idx in enumerate(mine):
    for r in np.unique(rows[idx]):
      deviations[p, r] = codes[idx[rows[idx] == r]].mean(0) - postures[p]
  weights = dict(WEIGHTS)
  if n_act == 1:             # one action: no deviations, their budget goes to the posture
    weights['posture'] += weights.pop('deviation')
  count = max(float(mech.noisy_sum('people', np.ones((len(people), 1)), 1.0,
                                   weights['people'])[0]), 1.0)
  bone_mean = mech.noisy_sum('bone lengths', bones / unit, BONE_CLIP * clip,
                             weights['bones']) / count
  place_mean = mech.noisy_sum('placement', person_roots / unit, PLACE_CLIP * clip,
                              weights['place']) / count
  class_means = np.broadcast_to(
      mech.noisy_sum('posture code', postures, bound * clip, weights['posture']) / count,
      (n_act, k)).copy()
  if n_act > 1:
    class_means += mech.noisy_sum('action deviations', deviations,
                                  DEVIATION_CLIP * bound * math.sqrt(n_act) * clip,
                                  weights['deviation']) / count
  bone_mean = _plausible_bones(bone_mean, layout)

  # Round 3: spreads around round 2's estimates, one number per person each.
  spread = np.zeros((len(people), 3))
  for p, idx in enumerate(mine):
    spread[p, 0] = np.mean(np.sum((codes[idx] - class_means[rows[idx]]) ** 2, 1))
    spread[p, 1] = np.sum((bones[p] / unit - bone_mean) ** 2)
    spread[p, 2] = np.sum((person_roots[p] / unit - place_mean) ** 2)
  spread_clip = np.array([bound ** 2, BONE_SPREAD_CLIP, PLACE_SPREAD_CLIP]) * clip
  totals = np.stack([mech.noisy_sum(name, spread[:, [i]] / spread_clip[i], 1.0,
                                    WEIGHTS['spread'] / 3)[0] * spread_clip[i]
                     for i, name in enumerate(('code spread', 'bone spread', 'place spread'))])
  totals = np.maximum(totals, 0.0) / count

  # Post-processing: the prior's arrays. A code coordinate of one sequence is within
  # [-limit, limit] (a time average of a unit direction's component; the clipped root), so
  # neither a mean nor a spread beyond that is anything but noise.
  limit = np.where(root_cols, ROOT_CLIP * clip, 1.0)
  class_means = np.clip(class_means, -limit, limit)
  between_actions = class_means.var(0) + VARIANCE_FLOOR
  class_var = np.clip(totals[0] * between_actions / between_actions.sum(), VARIANCE_FLOOR,
                      limit ** 2)
  scale = np.ones(basis.shape[0])
  scale.reshape(m, frames, v, c)[:, :, layout.root] = math.sqrt(unit)   # code_scale^2 = U there
  offset = np.zeros(basis.shape[0])
  offset.reshape(m, frames, v, c)[:, :, layout.root] = place_mean * unit
  raw_basis = basis * (scale ** 2)[:, None]                                 # U on root rows
  bone_lengths = (bone_mean * unit).astype(np.float32)
  nb = max(int(np.sum(bone_mean > 0)), 1)
  relative = np.sqrt(totals[1] / nb) / np.maximum(bone_mean, 1e-6)
  bone_chol = np.diag(np.where(bone_mean > 0, np.minimum(relative, MAX_BONE_SPREAD), 0.0))
  place_chol = np.eye(c) * math.sqrt(totals[2] / c) * unit
  eye = np.eye(k)
  prior = StylePrior(
      bone_lengths=bone_lengths, reference=np.zeros((v, c), np.float32),
      placement=(place_mean * unit).astype(np.float32), frames=int(frames),
      feature_mean=np.zeros(1, np.float32), feature_scale=np.ones(1, np.float32),
      weights=np.zeros((1, n_act), np.float32), bias=np.zeros(n_act, np.float32),
      actions=actions, mean=(offset + class_means @ raw_basis.T).astype(np.float32),
      basis=np.broadcast_to(raw_basis.astype(np.float32), (n_act,) + raw_basis.shape),
      chol=np.broadcast_to(np.diag(np.sqrt(class_var)), (n_act, k, k)).astype(np.float32),
      rotation=np.broadcast_to(eye, (n_act, k, k)).astype(np.float32),
      between=np.full((n_act, k), np.inf, np.float32), keep_style=0.0,
      salt=int(np.random.default_rng(seed).integers(2 ** 31)),
      bone_log_chol=bone_chol.astype(np.float32), placement_chol=place_chol.astype(np.float32),
      body_spread=float(vary_body), align=False, code_offset=offset.astype(np.float32),
      code_scale=scale.astype(np.float32), class_means=class_means.astype(np.float32),
      class_var=class_var.astype(np.float32))
  return prior, guarantee(epsilon, delta, z, mech, unit)


def guarantee(epsilon: float, delta: float, z: float, mech: dp.Mechanism, size_unit: float
              ) -> dict:
  """What a private fit records: the budget asked for, the epsilon actually spent at delta
  (exact Gaussian curve), the unit, the accountant, every release's clip and noise and the
  released size unit U (in the data's units: the clips are in units of it)."""
  spent = dp.gaussian_epsilon(z, delta) if z > 0 else math.inf
  return {'epsilon': None if math.isinf(epsilon) else float(epsilon), 'delta': float(delta),
          'spent_epsilon': None if math.isinf(spent) else float(spent),
          'unit': 'person', 'adjacency': 'add or remove one person',
          'accountant': 'exact Gaussian mechanism (mu-GDP composition, train/dp.py)',
          'noise_multiplier': float(z), 'size_unit': float(size_unit),
          'releases': mech.releases,
          'private': not math.isinf(epsilon)}
