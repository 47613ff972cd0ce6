"""The style-prior anonymizer: keep the action and the duration, draw the rest from many people.

Identity in real skeletons sits in body proportions and in motion style (docs/leakage.md). A
network that edits a person's motion keeps enough of it for an attacker who retrains on the
released data to read the person back (docs/privacy.md). This anonymizer therefore does not edit
the performance; it releases, for every input, a new performance of the input's action drawn
from an action-conditional distribution over whole sequences that was fitted to many people:

  1. front end: bones retargeted to the training medians, the sequence rotated (Kabsch on its
     mean posture) into the population's mean orientation and moved to the population's mean
     position, so neither proportions nor where someone stood relative to the sensor survive;
  2. the action predicted by a linear classifier on body+motion features (data/features.py) of
     the front end's output: no labels are needed at inference;
  3. the sequence as one vector (unit bone directions + root trajectory at `frames` frames,
     data.transforms.direction_encoding) in the predicted action's principal subspace, whitened
     by the action's covariance; in the basis that diagonalises the covariance of the people's
     means there, each direction has a between-person share (1 = pure identity). Directions with
     share >= keep_style are replaced by fresh standard-normal draws; the rest are kept. The
     default keep_style = 0 replaces all of them: the output depends on the input only through
     the predicted action and the duration;
  4. decoded at the input's own duration with the training median bone lengths (constant over
     time by construction) and smooth by construction (a sum of principal sequences).

The draw is seeded by a salt and a checksum of the input sample, so the same input always gives
the same output (evaluation and export agree) while different inputs get independent draws. What
is lost: what this person did within the action beyond its duration (RMSE to the input is large),
detail outside the principal subspace, and anything the fitted means and covariances say about
the training people as a group. What leaks: the duration, and the predicted action's errors.

Everything here is numpy and stateless: `anonymize(prior, x, lengths, layout)`; fitting is in
train/style_prior.py. A prior is saved as plain arrays (`to_arrays` / `from_arrays`, no pickle).
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from skeleton_anon.data import features as features_lib, transforms
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError

FEATURES = 'body+motion'
# Whitening floor: directions of (numerically) zero variance are not divided by zero.
COVARIANCE_EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class StylePrior:
  """Fitted arrays of the style-prior anonymizer (A actions, D = M*frames*V*C, K components)."""
  bone_lengths: np.ndarray      # [V] retargeting lengths
  reference: np.ndarray         # [V, C] population mean root-centred posture (orientation)
  placement: np.ndarray         # [C] population mean root position
  frames: int                   # encoding length
  feature_mean: np.ndarray      # [F] action classifier: standardiser
  feature_scale: np.ndarray     # [F]
  weights: np.ndarray           # [F, A] action classifier: logistic regression
  bias: np.ndarray              # [A]
  actions: np.ndarray           # [A] the action label of each class row
  mean: np.ndarray              # [A, D] per-action mean encoding
  basis: np.ndarray             # [A, D, K] principal directions (zero columns pad)
  chol: np.ndarray              # [A, K, K] Cholesky factor of the covariance in the subspace
  rotation: np.ndarray          # [A, K, K] eigenvectors of the whitened between-person covariance
  between: np.ndarray           # [A, K] between-person share of each rotated direction
  keep_style: float = 0.0
  salt: int = 0
  # Population body variety (`vary_body`): Cholesky factors of the covariance of the training
  # people's log bone-length ratios to the medians [V, V] and of their mean root positions
  # [C, C], and how much of that spread each draw gets (0: every output has the medians and the
  # mean placement, as before).
  bone_log_chol: np.ndarray | None = None
  placement_chol: np.ndarray | None = None
  body_spread: float = 0.0
  # With a shared subspace: the standard deviation [D] of the training encodings' within-action
  # residual off that subspace (pooled over everyone: the detail the subspace leaves out).
  residual_std: np.ndarray | None = None
  # The private fit (train/private_prior.py): align=False moves each input without rotating it
  # (a private reference posture would cost budget); with class_means the action is predicted
  # in the code space (`code`: the public basis is basis[0] / code_scale^2), by the nearest
  # class mean [A, K] under the diagonal variance class_var [K].
  align: bool = True
  code_offset: np.ndarray | None = None
  code_scale: np.ndarray | None = None
  class_means: np.ndarray | None = None
  class_var: np.ndarray | None = None
  # The output's duration (`output_lengths`): 'input' keeps each input's (the one channel left
  # by construction), 'action' plays every output for its predicted action's median training
  # duration, 'drawn' for a duration drawn (from the draw's seed) from a log-normal fitted to
  # the action's training durations, within their range. action_durations [A, 5]: median,
  # mean and standard deviation of the log duration, shortest, longest.
  duration_mode: str = 'input'
  action_durations: np.ndarray | None = None

  def to_arrays(self) -> dict[str, np.ndarray]:
    return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None}

  @classmethod
  def from_arrays(cls, arrays) -> 'StylePrior':
    values = {}
    names = set(arrays)
    for f in dataclasses.fields(cls):
      if f.name not in names and f.default is not dataclasses.MISSING:
        continue                       # written before the field existed: its default
      a = np.asarray(arrays[f.name])
      values[f.name] = (int(a) if f.name in ('frames', 'salt') else
                        float(a) if f.name in ('keep_style', 'body_spread') else
                        bool(a) if f.name == 'align' else
                        str(a) if f.name == 'duration_mode' else a)
    return cls(**values)


def front_end(x: np.ndarray, lengths: np.ndarray, layout: Layout, bone_lengths: np.ndarray,
              reference: np.ndarray, placement: np.ndarray, align: bool = True) -> np.ndarray:
  """x retargeted, rotated onto `reference` (unless not align) and moved to `placement` (one
  rigid motion per sample, from its first person's mean posture); padded frames and absent
  persons stay zero."""
  return place(transforms.retarget(x, lengths, layout, bone_lengths), lengths, layout,
               reference, placement, align)


def place(x: np.ndarray, lengths: np.ndarray, layout: Layout, reference: np.ndarray,
          placement: np.ndarray, align: bool = True) -> np.ndarray:
  """`front_end` for x already retargeted: the rigid motion only."""
  posture, root = transforms.first_person_mean_posture(x, lengths, layout)
  if align:
    rotation = transforms.rigid_alignment(posture, reference)              # [N, C, C]
  else:
    rotation = np.broadcast_to(np.eye(posture.shape[-1]), (len(x),) + (posture.shape[-1],) * 2)
  moved = np.einsum('nij,nmtvj->nmtvi', rotation,
                    x.astype(np.float64) - root[:, None, None, None]) + placement
  mask = transforms.valid_mask(x, lengths)[..., None, None]
  return np.where(mask, moved, 0.0).astype(np.float32)


def code(prior: StylePrior, encoded: np.ndarray) -> np.ndarray:
  """[N, K]: flat encodings [N, D] in a private prior's code space (StylePrior.align)."""
  square = prior.code_scale.astype(np.float64) ** 2
  normed = (np.asarray(encoded, np.float64) - prior.code_offset) / square
  return normed @ (prior.basis[0] / square[:, None]) / prior.frames


def predict_action(prior: StylePrior, front: np.ndarray, lengths: np.ndarray,
                   layout: Layout, encoded: np.ndarray | None = None) -> np.ndarray:
  """int [N]: row index into prior.actions of each sample's predicted action (encoded: the
  flat encodings [N, D], needed by a prior with class_means)."""
  if len(prior.actions) == 1:
    return np.zeros(len(front), np.int64)
  if prior.class_means is not None:
    z = code(prior, encoded)
    distance = (((z[:, None] - prior.class_means[None]) ** 2) / prior.class_var).sum(-1)
    return np.argmin(distance, axis=1)
  feats = features_lib.sequence_features(front, lengths, layout, FEATURES)
  scores = ((feats - prior.feature_mean) / prior.feature_scale) @ prior.weights + prior.bias
  return np.argmax(scores, axis=1)


def sample_seeds(x: np.ndarray, salt: int) -> list[list[int]]:
  """One seed per sample: the salt and a checksum of the sample's bytes."""
  return [[int(salt), zlib.crc32(np.ascontiguousarray(s, np.float32).tobytes())] for s in x]


def resample_style(prior: StylePrior, row: int, encoded: np.ndarray,
                   seeds: list[list[int]]) -> np.ndarray:
  """[n, D]: encodings of action `row` with every direction whose between-person share is
  >= keep_style replaced by a fresh draw from the action's distribution."""
  mean, basis, chol = prior.mean[row], prior.basis[row], prior.chol[row]
  rotation = prior.rotation[row]
  z = (encoded.astype(np.float64) - mean) @ basis                          # [n, K]
  q = np.linalg.solve(chol, z.T).T @ rotation                              # whitened, rotated
  replace = prior.between[row] >= prior.keep_style
  draws = np.stack([np.random.default_rng(s).standard_normal(q.shape[1]) for s in seeds])
  q = np.where(replace[None], draws, q)
  z = (q @ rotation.T) @ chol.T
  return mean + z @ basis.T


def body_draws(prior: StylePrior, seeds: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
  """(bone lengths [n, V], root offsets [n, C]) of each draw: the medians and no offset, or,
  with prior.body_spread > 0, a body and a place drawn from the population's spread (from the
  draw's seed alone: nothing of the input's own proportions)."""
  v, c = len(prior.bone_lengths), len(prior.placement)
  lengths = np.broadcast_to(prior.bone_lengths, (len(seeds), v)).astype(np.float32)
  offsets = np.zeros((len(seeds), c), np.float32)
  if prior.body_spread <= 0 or prior.bone_log_chol is None:
    return lengths, offsets
  for i, s in enumerate(seeds):
    rng = np.random.default_rng([*s, 1])
    ratio = prior.body_spread * (prior.bone_log_chol @ rng.standard_normal(v))
    lengths[i] = prior.bone_lengths * np.exp(ratio)
    offsets[i] = prior.body_spread * (prior.placement_chol @ rng.standard_normal(c))
  return lengths, offsets


DURATION_MODES = ('input', 'action', 'drawn')


def check_duration_mode(mode) -> None:
  """ConfigError for an output_duration that is not one of DURATION_MODES."""
  if mode not in DURATION_MODES:
    raise ConfigError(f'style_prior: output_duration must be one of {DURATION_MODES}, got '
                      f'{mode!r}')


def output_lengths(prior: StylePrior, rows: np.ndarray, lengths: np.ndarray,
                   seeds: list[list[int]], max_frames: int) -> np.ndarray:
  """int32 [n]: how many frames each output plays (StylePrior.duration_mode), in [1,
  max_frames]; nothing of the input but its predicted action (and, for 'input', its duration)."""
  mode = prior.duration_mode
  if mode == 'input' or prior.action_durations is None:
    out = np.asarray(lengths)
  elif mode == 'action':
    out = np.rint(prior.action_durations[rows, 0])
  elif mode == 'drawn':
    table = prior.action_durations[rows]
    normal = np.array([np.random.default_rng([*s, 3]).standard_normal() for s in seeds])
    out = np.clip(np.rint(np.exp(table[:, 1] + table[:, 2] * normal)), table[:, 3], table[:, 4])
  else:
    raise ValueError(f'duration_mode must be one of {DURATION_MODES}, got {mode!r}')
  return np.clip(out, 1, max_frames).astype(np.int32)


def anonymize(prior: StylePrior, x: np.ndarray, lengths: np.ndarray, layout: Layout, *,
              generator=None, seeds: list[list[int]] | None = None) -> np.ndarray:
  """`anonymize_with_lengths` without the output lengths."""
  return anonymize_with_lengths(prior, x, lengths, layout, generator=generator, seeds=seeds)[0]


def anonymize_with_lengths(prior: StylePrior, x: np.ndarray, lengths: np.ndarray,
                           layout: Layout, *, generator=None,
                           seeds: list[list[int]] | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
  """float32 array of x's shape [N, M, T, V, C]: the style-prior anonymization of every sample
  (see the module docstring). Deterministic given the prior and the input.

  generator: None draws from the prior's Gaussians (`resample_style`); else a callable
  (rows [n], lengths [n], seeds) -> encodings [n, D] of new performances of those actions at
  those durations, e.g. the learned flow of models/flow_prior.py. It sees nothing of the input
  but the predicted action, the duration and the draw's seed. seeds: the draws' seeds
  (default `sample_seeds`, a checksum of each input: tests fix them to compare two people).
  Returns (outputs, their lengths [N]: the input's unless prior.duration_mode says otherwise)."""
  x = np.asarray(x, np.float32)
  lengths = np.asarray(lengths, np.int32)
  out = np.zeros_like(x)
  played = lengths.copy()
  for lo in range(0, len(x), transforms.CHUNK):
    chunk, n = x[lo:lo + transforms.CHUNK], lengths[lo:lo + transforms.CHUNK]
    front = front_end(chunk, n, layout, prior.bone_lengths, prior.reference, prior.placement,
                      prior.align)
    encoded = transforms.direction_encoding(front, n, layout, prior.frames)
    flat = encoded.reshape(len(chunk), -1)
    rows = predict_action(prior, front, n, layout, flat)
    chunk_seeds = (sample_seeds(chunk, prior.salt) if seeds is None
                   else seeds[lo:lo + transforms.CHUNK])
    n = played[lo:lo + len(chunk)] = output_lengths(prior, rows, n, chunk_seeds, x.shape[2])
    if generator is not None:
      drawn = np.asarray(generator(rows, n, chunk_seeds), np.float32).reshape(flat.shape)
    else:
      drawn = np.empty_like(flat)
      for row in np.unique(rows):
        idx = np.flatnonzero(rows == row)
        drawn[idx] = resample_style(prior, int(row), flat[idx], [chunk_seeds[i] for i in idx])
    present = np.any(chunk != 0, axis=(2, 3, 4))
    bodies, offsets = body_draws(prior, chunk_seeds)
    decoded = transforms.direction_decoding(
        drawn.reshape(encoded.shape), n, x.shape[2], layout,
        bodies if prior.body_spread > 0 else prior.bone_lengths, present=present)
    if prior.body_spread > 0:
      mask = transforms.valid_mask(decoded, n)[..., None, None]
      decoded = np.where(mask, decoded + offsets[:, None, None, None], 0.0).astype(np.float32)
    out[lo:lo + len(chunk)] = decoded
  return out, played
