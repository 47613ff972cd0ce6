"""Fitting the style-prior anonymizer (models/style_prior.py) to a labelled training set.

Closed form, no gradient steps: medians, a generalized Procrustes mean, one logistic regression
and, per action, a principal subspace with its covariance and the covariance of the people's
means. Labels are used here only; the fitted prior anonymizes unlabelled data.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data import features as features_lib, transforms
from skeleton_anon.data.layouts import Layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import linear
from skeleton_anon.models.style_prior import (COVARIANCE_EPS, FEATURES, StylePrior,
                                              check_duration_mode, place)

# The action classifier: weaker regularisation than the attack suite's default (on MSRC-12 it
# reaches 0.988 test top-1 rather than 0.975).
CLASSIFIER_L2 = 1e-4
CLASSIFIER_ITER = 300
PROCRUSTES_ROUNDS = 3
MAX_AUTO_FRAMES = 128


def auto_frames(lengths: np.ndarray) -> int:
  """The encoding length when none is given: the median duration, within [8, 128] frames."""
  return int(np.clip(np.median(lengths), 8, MAX_AUTO_FRAMES))


def population_reference(posture: np.ndarray) -> np.ndarray:
  """[V, C]: the generalized Procrustes mean of root-centred postures [N, V, C]."""
  reference = posture.mean(0)
  for _ in range(PROCRUSTES_ROUNDS):
    rotation = transforms.rigid_alignment(posture, reference)
    reference = np.einsum('nij,nvj->nvi', rotation, posture).mean(0)
  return reference


def _action_model(encoded: np.ndarray, people: np.ndarray, components: int,
                  shared: tuple[np.ndarray, np.ndarray] | None = None, shrink: float = 0.0):
  """(mean [D], basis [D, K], chol [K, K], rotation [K, K], between [K]) of one action's
  encodings [n, D]; columns beyond the action's rank are zero padding (they change nothing).

  shared: (basis [D, K], pooled covariance [K, K]) of every action's within-action variation;
  with it the action lives in the shared basis and its covariance is shrunk towards the pooled
  one by `shrink` (1: the pooled covariance alone), so an action seen ~19 times borrows the
  variety of all the others instead of being one near-degenerate Gaussian."""
  n, d = encoded.shape
  mean = encoded.mean(0)
  centred = encoded - mean
  if shared is None:
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(components, max(n - 1, 0), d)
    basis = np.zeros((d, components))
    basis[:, :k] = vt[:k].T
  else:
    basis, pooled = shared
    k = int(np.sum(np.any(basis != 0, axis=0)))
  z = centred @ basis[:, :k]
  cov = np.eye(components)
  if k:
    own = np.atleast_2d(np.cov(z.T)) if n > 1 else np.zeros((k, k))
    if shared is not None:
      own = (1.0 - shrink) * own + shrink * pooled[:k, :k]
    cov[:k, :k] = own + COVARIANCE_EPS * np.eye(k)
  chol = np.linalg.cholesky(cov)
  whitened = np.linalg.solve(chol[:k, :k], z.T).T if k else z
  between = np.zeros((k, k))
  people_here = np.unique(people)
  if len(people_here) >= 2 and k:
    means = np.stack([whitened[people == p].mean(0) for p in people_here])
    between = np.atleast_2d(np.cov(means.T))
  share, vectors = np.linalg.eigh(between) if k else (np.zeros(0), np.zeros((0, 0)))
  rotation = np.eye(components)
  rotation[:k, :k] = vectors
  # Padding directions carry nothing; call them pure identity so that they are always drawn.
  shares = np.full(components, np.inf)
  shares[:k] = np.maximum(share, 0.0)
  return mean, basis, chol, rotation, shares


def population_spread(x: np.ndarray, lengths: np.ndarray, subject: np.ndarray, layout: Layout,
                      bone_lengths: np.ndarray, root: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Cholesky factors of the people's spread: of their log bone-length ratios to the medians
  [V, V] and of their mean root positions [C, C] (one point per person, not per sequence)."""
  people = np.unique(subject)
  ratios, places = [], []
  safe = np.where(bone_lengths > 0, bone_lengths, 1.0)
  for p in people:
    mine = subject == p
    own = transforms.median_bone_lengths(x[mine], lengths[mine], layout)
    ratios.append(np.where(bone_lengths > 0, np.log(np.maximum(own, 1e-6) / safe), 0.0))
    places.append(root[mine].mean(0))
  def chol(points):
    points = np.asarray(points, np.float64)
    cov = np.cov(points.T) if len(points) > 1 else np.zeros((points.shape[1],) * 2)
    return np.linalg.cholesky(np.atleast_2d(cov) + 1e-10 * np.eye(points.shape[1]))
  return chol(ratios).astype(np.float32), chol(places).astype(np.float32)


def shared_subspace(encoded: np.ndarray, rows: np.ndarray, components: int
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(basis [D, K], pooled covariance [K, K]) of the within-action residuals of all actions."""
  residual = encoded.astype(np.float64).copy()
  for r in np.unique(rows):
    residual[rows == r] -= residual[rows == r].mean(0)
  _, _, vt = np.linalg.svd(residual, full_matrices=False)
  k = min(components, max(len(encoded) - len(np.unique(rows)), 0), encoded.shape[1])
  basis = np.zeros((encoded.shape[1], components))
  basis[:, :k] = vt[:k].T
  z = residual @ basis[:, :k]
  pooled = np.zeros((components, components))
  pooled[:k, :k] = z.T @ z / max(len(z) - len(np.unique(rows)), 1)
  return basis, pooled


def residual_spread(encoded: np.ndarray, rows: np.ndarray, basis: np.ndarray) -> np.ndarray:
  """float32 [D]: per-dimension standard deviation of the within-action residuals left off the
  shared subspace `basis` [D, K], pooled over all training sequences (no person's own)."""
  residual = encoded.astype(np.float64).copy()
  for r in np.unique(rows):
    residual[rows == r] -= residual[rows == r].mean(0)
  residual -= (residual @ basis) @ basis.T
  dof = max(len(encoded) - len(np.unique(rows)), 1)
  return np.sqrt((residual ** 2).sum(0) / dof).astype(np.float32)


# The config knobs of fit_style_prior (configs' anonymizer.knobs for arch style_prior).
KNOBS = ('components', 'frames', 'keep_style', 'shrink', 'vary_body', 'output_duration')


def action_durations(lengths: np.ndarray, rows: np.ndarray, num_actions: int) -> np.ndarray:
  """float32 [A, 5] of each action's training durations: median, mean and standard deviation
  of the log duration, shortest, longest (StylePrior.action_durations)."""
  table = np.zeros((num_actions, 5), np.float32)
  for r in range(num_actions):
    mine = np.maximum(np.asarray(lengths)[rows == r], 1).astype(np.float64)
    logs = np.log(mine)
    table[r] = (np.median(mine), logs.mean(), logs.std(), mine.min(), mine.max())
  return table


def fit_style_prior(x: np.ndarray, lengths: np.ndarray, action: np.ndarray,
                    subject: np.ndarray, layout: Layout, *, components: int = 48,
                    frames: int = 0, keep_style: float = 0.0, seed: int = 0,
                    shrink: float | None = None, vary_body: float = 0.0,
                    output_duration: str = 'input') -> StylePrior:
  """A StylePrior fitted on training samples x [N, M, T, V, C] with their action and subject
  labels (subject: who performed, used only to measure which directions are identity).

  components: principal directions per action; frames: encoding length (0: `auto_frames`);
  keep_style: directions with a between-person share below it are kept from the input (0: none);
  shrink: None keeps one principal subspace per action; a value in [0, 1] puts every action in
  one subspace shared by all (`shared_subspace`) and shrinks each action's covariance towards
  the pooled within-action covariance by that much (1: every action has the pooled one);
  vary_body: > 0 gives every output a body (bone lengths) and a place (root offset) drawn from
  a Gaussian fitted to the training people's spread, scaled by vary_body (1: the population's
  own spread), instead of the medians and the mean placement for everyone, so recognizers
  trained on the release meet the variety of real bodies (independent of the input's body);
  output_duration: 'input' (each output plays for its input's duration), 'action' (its
  predicted action's median training duration) or 'drawn' (a duration drawn per output from the
  action's training durations): the last two close the duration channel, and the released
  lengths are then the outputs' own (models/style_prior.output_lengths).
  """
  check_duration_mode(output_duration)
  if shrink is not None and not 0.0 <= float(shrink) <= 1.0:
    raise ConfigError(f'style_prior: shrink must be in [0, 1] (or None), got {shrink}')
  x = np.asarray(x, np.float32)
  lengths = np.asarray(lengths, np.int32)
  action, subject = np.asarray(action), np.asarray(subject)
  if components < 1:
    raise ConfigError(f'style_prior: components must be >= 1, got {components}')
  if len(x) < 2:
    raise ConfigError(f'style_prior: needs at least 2 training samples, got {len(x)}')
  frames = int(frames) or auto_frames(lengths)
  bone_lengths = transforms.median_bone_lengths(x, lengths, layout)
  retargeted = transforms.retarget(x, lengths, layout, bone_lengths)
  posture, root = transforms.first_person_mean_posture(retargeted, lengths, layout)
  reference = population_reference(posture)
  placement = root.mean(0)
  front = place(retargeted, lengths, layout, reference, placement)
  actions = np.unique(action)
  rows = np.searchsorted(actions, action)
  feats = features_lib.sequence_features(front, lengths, layout, FEATURES)
  scaler = linear.Standardizer.fit(feats)
  if len(actions) > 1:
    classifier = linear.LogisticRegression.fit(scaler(feats), rows, len(actions),
                                               l2=CLASSIFIER_L2, max_iter=CLASSIFIER_ITER)
    weights, bias = classifier.weights, classifier.bias
  else:
    weights, bias = np.zeros((feats.shape[1], 1), np.float32), np.zeros(1, np.float32)
  encoded = transforms.direction_encoding(front, lengths, layout, frames).reshape(len(x), -1)
  shared = None if shrink is None else shared_subspace(encoded, rows, components)
  parts = [_action_model(encoded[rows == r].astype(np.float64), subject[rows == r], components,
                         shared, 0.0 if shrink is None else float(shrink))
           for r in range(len(actions))]
  stacked = [np.stack([p[i] for p in parts]) for i in range(5)]
  salt = int(np.random.default_rng(seed).integers(2 ** 31))
  bone_chol, place_chol = population_spread(x, lengths, subject, layout, bone_lengths, root)
  return StylePrior(bone_lengths=bone_lengths, reference=reference.astype(np.float32),
                    placement=placement.astype(np.float32), frames=frames,
                    feature_mean=scaler.mean, feature_scale=scaler.scale, weights=weights,
                    bias=bias, actions=actions, mean=stacked[0], basis=stacked[1],
                    chol=stacked[2], rotation=stacked[3], between=stacked[4],
                    keep_style=float(keep_style), salt=salt, bone_log_chol=bone_chol,
                    placement_chol=place_chol, body_spread=float(vary_body),
                    residual_std=None if shared is None else
                    residual_spread(encoded, rows, shared[0]),
                    duration_mode=str(output_duration),
                    action_durations=action_durations(lengths, rows, len(actions)))
