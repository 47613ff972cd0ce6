"""Skeleton pre-normalisation (2s-AGCN and pyskl variants; pyskl's 2D ones) and pad/crop.

Everything here works on the whole array at once: numpy broadcasting, index gathers for "repeat
the earlier valid frames", and one batched 3x3 rotation per sample. There is no Python loop over
samples or frames (only over chunks of samples, which bounds memory at NTU scale).

Facts reproduced from the public reference pipelines:
  * 2s-AGCN / MS-G3D `pre_normalization`: a person whose first frame is empty has all its
    non-empty frames moved to the front; frames after a person's last valid frame are filled by
    repeating frames [0, last]; every joint is shifted by person 0's centre joint of the same
    frame (joints that are exactly zero stay zero); then one rotation per sample takes the first
    frame's bottom->top spine bone onto +z and, after that, the right->left shoulder bone onto +x.
  * pyskl `PreNormalize3D`: the person with more valid frames becomes person 0, only the frames
    where that person is present are kept, every joint is shifted by person 0's centre joint of
    the first kept frame, then the same two rotations. (pyskl hard-codes the centre as joint 1
    for 25 joints; here it is the layout's `norm_center`, which is joint 1 for `ntu25`.)

  * pyskl `PreNormalize2D` (2D keypoints, C=2): keypoints whose score is at or below 0.01 are
    set to zero; in mode 'fix' (here 'image') x becomes (x - w/2) / (w/2) and y (y - h/2) / (h/2)
    with (h, w) the sample's `img_shape`, so the frame spans [-1, 1] on both axes (the two axes
    are scaled differently, as in pyskl). Mode 'auto' centres on the box around all valid
    keypoints of the sample instead.

Deliberate differences from the reference code, all about degenerate input or units: an
anti-parallel bone is turned by 180 degrees (the reference's cross product vanishes there and it
leaves the skeleton upside down), and a zero-length bone gives the identity rotation (never NaN).
'skeleton' (pyskl's 'auto') scales both axes by half the box's longer side, so the aspect ratio
and bone-length ratios survive and any unit works (pyskl scales x and y by their own extents and
skips boxes under 10 pixels); a box of zero size is only centred. Keypoints that are exactly zero
(absent) stay zero in every method, and a present 2D keypoint that lands exactly on the centre
is moved by 1e-6 so that it does not read as absent.

The 2D methods are affine per sample: x_norm = (x - offset) / scale. `normalize` returns offset
and scale, and `denormalize_2d` maps anonymized keypoints back to the input's frame (pixels).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from skeleton_anon.data.layouts import Layout, get_layout
from skeleton_anon.errors import ConfigError, DataError

METHODS_3D = ('agcn', 'pyskl')
METHODS_2D = ('image', 'skeleton')
METHODS = ('none', *METHODS_3D, *METHODS_2D)
# pyskl PreNormalize2D's default threshold: a keypoint scored at or below it counts as missing.
SCORE_THRESHOLD = 0.01
CROP_MODES = ('head', 'resample')

# Bones shorter than this (metres) carry no direction: their rotation is the identity.
_MIN_BONE = 1e-6
# Below this |u x target| the bone is (anti-)parallel to the target axis.
_MIN_SINE = 1e-9
# A 2D keypoint normalised onto exactly (0, 0) gets this x, so that it still counts as present.
_ON_CENTRE = np.float32(1e-6)


def check_method(method: str, channels: int) -> None:
  """ConfigError (one line) for an unknown method or one made for the other dimensionality."""
  if method not in METHODS:
    raise ConfigError(f'unknown normalize method {method!r}; use one of {list(METHODS)}')
  if channels == 2 and method in METHODS_3D:
    raise ConfigError(f"normalize {method!r} rotates 3D skeletons; 2D keypoints (C=2) take "
                      "'image' (pyskl's PreNormalize2D: image centre and size), 'skeleton' "
                      "(the skeleton's own extent) or 'none'")
  if channels == 3 and method in METHODS_2D:
    raise ConfigError(f"normalize {method!r} is for 2D keypoints (C=2); 3D coordinates take "
                      "'agcn', 'pyskl' or 'none'")


def default_method(channels: int, has_img_shape: bool) -> str:
  """What 'auto' means: 'agcn' for 3D; for 2D 'image' when the image size is known, else
  'skeleton'."""
  if channels == 3:
    return 'agcn'
  return 'image' if has_img_shape else 'skeleton'


@dataclasses.dataclass
class Normalized:
  """Output of `normalize`. x float32 [N, M, T, V, C]; lengths int32 [N]; score float32
  [N, M, T, V] reordered like x (None without input scores); offset, scale float32 [N, C] of the
  2D methods (x_norm = (x - offset) / scale), None for the others."""
  x: np.ndarray
  lengths: np.ndarray
  score: np.ndarray | None = None
  offset: np.ndarray | None = None
  scale: np.ndarray | None = None


def pre_normalize(x: np.ndarray, lengths: np.ndarray, layout: Layout | str,
                  method: str = 'agcn', *, repeat_to_end: bool = True,
                  chunk_size: int = 1024, path=None, score: np.ndarray | None = None,
                  img_shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Normalises position and orientation of every sample, as 2s-AGCN or pyskl do.

  Args:
    x: float [N, M, T, V, C] channels-last coordinates, C = 3 (3D) or 2 (image-plane
      keypoints); absent persons and frames at or beyond `lengths` are zero (frames beyond
      `lengths` are ignored either way).
    lengths: int [N] valid frames per sample.
    layout: a `Layout` or a registered layout name; its `norm_center`, `norm_zaxis` and
      `norm_xaxis` pick the joints. A layout without axes (custom) is only centred.
    method: 'none' (copy), 'agcn' (2s-AGCN / MS-G3D) or 'pyskl' for 3D; 'image' (pyskl's
      PreNormalize2D, needs `img_shape`) or 'skeleton' for 2D (see the module docstring).
    repeat_to_end: 'agcn' only. True (the reference behaviour) repeats each person's frames up to
      the end of the array, so every sample with a body gets length T: call `pad_or_crop` first
      to choose that T. False repeats only up to each sample's own length.
    chunk_size: samples processed at once; bounds the temporary memory.
    path: file name used in error messages.
    score: optional float [N, M, T, V] keypoint confidences (2D methods ignore keypoints scored
      at or below SCORE_THRESHOLD). Use `normalize` to get them back reordered.
    img_shape: int [N, 2] (height, width) per sample, for 'image'.

  Returns:
    (x, lengths): new float32 [N, M, T, V, C] and int32 [N]. Frames at or beyond the returned
    lengths and absent persons are exactly zero. A sample without any body stays all zero and
    keeps its length.
  """
  out = normalize(x, lengths, layout, method, repeat_to_end=repeat_to_end,
                  chunk_size=chunk_size, path=path, score=score, img_shape=img_shape)
  return out.x, out.lengths


def normalize(x: np.ndarray, lengths: np.ndarray, layout: Layout | str, method: str = 'agcn',
              *, score: np.ndarray | None = None, img_shape: np.ndarray | None = None,
              repeat_to_end: bool = True, chunk_size: int = 1024, path=None,
              threshold: float = SCORE_THRESHOLD) -> Normalized:
  """`pre_normalize` with everything it knows: scores moved along with their keypoints (the 3D
  methods reorder persons and frames) and the 2D methods' per-sample offset and scale."""
  if method not in METHODS:
    raise ConfigError(f'unknown normalize method {method!r}; use one of {list(METHODS)}')
  if isinstance(layout, str):
    layout = get_layout(layout)
  x, lengths = _checked(x, lengths, layout.num_joints, path)
  channels = x.shape[-1]
  check_method(method, channels)
  if score is not None:
    score = np.asarray(score)
    if score.shape != x.shape[:-1]:
      raise DataError(path, f'score has shape {list(score.shape)}, the keypoints '
                      f'{list(x.shape)}: expected {list(x.shape[:-1])}', key='score')
  if method == 'image':
    if img_shape is None:
      raise DataError(path, "normalize 'image' needs each sample's image size (img_shape: "
                      "height, width in pixels), which this data lacks; use 'skeleton' or give "
                      'the size (prepare --img_shape=H,W)', key='img_shape')
    img_shape = np.asarray(img_shape)
    if img_shape.shape != (x.shape[0], 2) or (img_shape < 1).any():
      raise DataError(path, f'img_shape must be positive (height, width) of shape '
                      f'[{x.shape[0]}, 2], got {list(img_shape.shape)}', key='img_shape')
  out = np.empty(x.shape, np.float32)
  out_lengths = np.empty_like(lengths)
  out_score = None if score is None else np.empty(score.shape, np.float32)
  planar = method in METHODS_2D
  offset = np.zeros((x.shape[0], channels), np.float32) if planar else None
  scale = np.ones((x.shape[0], channels), np.float32) if planar else None
  step = max(1, int(chunk_size))
  for start in range(0, x.shape[0], step):
    part = slice(start, start + step)
    xc = np.asarray(x[part], np.float32)
    sc = None if score is None else np.asarray(score[part], np.float32)
    so = None if score is None else out_score[part]
    # The chunk functions write their result straight into `out[part]` (saves a copy).
    if method == 'none':
      out[part] = _mask_beyond_lengths(xc, lengths[part])
      out_lengths[part] = lengths[part]
      if sc is not None:
        so[...] = sc * _inside(lengths[part], x.shape[2])
    elif method == 'agcn':
      out_lengths[part] = _agcn(xc, lengths[part], layout, repeat_to_end, out[part], sc, so)
    elif method == 'pyskl':
      out_lengths[part] = _pyskl(xc, lengths[part], layout, out[part], sc, so)
    else:
      offset[part], scale[part] = _planar(
          xc, lengths[part], method, sc, None if img_shape is None else img_shape[part],
          threshold, out[part])
      out_lengths[part] = lengths[part]
      if sc is not None:
        so[...] = sc * _inside(lengths[part], x.shape[2])
  return Normalized(out, out_lengths, out_score, offset, scale)


def denormalize_2d(y: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
  """The inverse of a 2D method: y * scale + offset per sample, for y [N, M, T, V, 2] and
  offset, scale [N, 2]; keypoints that are exactly zero (absent) stay zero."""
  y = np.asarray(y, np.float32)
  present = (y != 0).any(axis=-1, keepdims=True)
  shape = (-1, 1, 1, 1, y.shape[-1])
  x = y * np.asarray(scale, np.float32).reshape(shape) + \
      np.asarray(offset, np.float32).reshape(shape)
  return np.where(present, x, np.float32(0))


def _planar(x, lengths, method: str, score, img_shape, threshold: float, out: np.ndarray):
  """One chunk of 'image' or 'skeleton' into `out`; returns (offset, scale) [n, 2]."""
  valid = _tracked_joints(x) & _inside(lengths, x.shape[2])          # [n, m, t, V]
  if score is not None:
    valid &= score > threshold
  n = x.shape[0]
  if method == 'image':
    h, w = (img_shape[:, i].astype(np.float64) for i in (0, 1))
    offset = np.stack([w / 2, h / 2], axis=-1)
    scale = offset.copy()
  else:
    mask = valid[..., None]
    lo = np.where(mask, x, np.inf).reshape(n, -1, 2).min(axis=1)
    hi = np.where(mask, x, -np.inf).reshape(n, -1, 2).max(axis=1)
    has = valid.reshape(n, -1).any(axis=1)
    offset = np.where(has[:, None], (lo + hi) / 2, 0.0)
    half = np.where(has, (hi - lo).max(axis=1) / 2, 0.0)
    half = np.where(half > 0, half, 1.0)
    scale = np.stack([half, half], axis=-1)
  shape = (n, 1, 1, 1, 2)
  out[...] = (x - offset.reshape(shape)) / scale.reshape(shape) * valid[..., None]
  # A keypoint that lands exactly on the centre would read as absent (all zero): nudge it.
  on_centre = valid & (out[..., 0] == 0) & (out[..., 1] == 0)
  out[..., 0][on_centre] = _ON_CENTRE
  return offset.astype(np.float32), scale.astype(np.float32)


def pad_or_crop(x: np.ndarray, lengths: np.ndarray, max_frames: int, *,
                crop: str = 'head') -> tuple[np.ndarray, np.ndarray]:
  """Brings every sample to `max_frames` frames: zero padding, or cropping the longer ones.

  Args:
    x: float [N, M, T, V, C].
    lengths: int [N] valid frames per sample.
    max_frames: the new T.
    crop: 'head' keeps the first `max_frames` frames of a longer sample; 'resample' picks
      `max_frames` evenly spaced frames over its whole length (keeps the whole action).

  Returns:
    (x, lengths) with x float32 [N, M, max_frames, V, C] (zero beyond lengths) and lengths int32
    min(lengths, max_frames).
  """
  if crop not in CROP_MODES:
    raise ConfigError(f'unknown crop mode {crop!r}; use one of {list(CROP_MODES)}')
  if int(max_frames) < 1:
    raise ConfigError(f'max_frames must be >= 1, got {max_frames}')
  max_frames = int(max_frames)
  x = np.asarray(x)
  lengths = np.minimum(np.asarray(lengths, np.int64), x.shape[2])
  n, m, t = x.shape[:3]
  frame = np.arange(max_frames)
  src = np.broadcast_to(np.minimum(frame, t - 1), (n, max_frames)).copy()
  if crop == 'resample':
    longer = lengths > max_frames
    # Evenly spaced over [0, L-1], first and last frame kept.
    scale = (lengths[longer] - 1) / max(max_frames - 1, 1)
    src[longer] = np.rint(frame[None, :] * scale[:, None]).astype(np.int64)
  new_lengths = np.minimum(lengths, max_frames)
  rows = np.arange(n)[:, None]
  y = np.asarray(x[rows, :, src], np.float32)     # [N, max_frames, M, V, C]
  y = np.moveaxis(y, 1, 2)
  y *= (frame[None, :] < new_lengths[:, None])[:, None, :, None, None]
  return np.ascontiguousarray(y), new_lengths.astype(np.int32)


def rotation_onto(vectors: np.ndarray, target: Sequence[float]) -> np.ndarray:
  """Rotation matrices [..., 3, 3] turning each vector [..., 3] onto the direction `target`.

  The rotation is about the axis vector x target (the smallest one); a zero vector gives the
  identity, a vector opposite to `target` a half turn about an axis perpendicular to it.
  """
  v = np.asarray(vectors, np.float64)
  goal = np.asarray(target, np.float64)
  goal = goal / np.linalg.norm(goal)
  norm = np.linalg.norm(v, axis=-1, keepdims=True)
  has_direction = norm[..., 0] > _MIN_BONE
  u = np.where(has_direction[..., None], v / np.where(norm > 0, norm, 1.0), goal)
  cross = np.cross(u, goal)
  sine = np.linalg.norm(cross, axis=-1)
  cosine = np.clip((u * goal).sum(-1), -1.0, 1.0)
  general = sine > _MIN_SINE
  axis = np.where(general[..., None], cross / np.where(general, sine, 1.0)[..., None], 0.0)
  # Opposite vectors: any unit axis perpendicular to u, e.g. u x (the basis vector u points
  # least along).
  least = np.eye(3)[np.argmin(np.abs(u), axis=-1)]
  perp = np.cross(u, least)
  perp /= np.linalg.norm(perp, axis=-1, keepdims=True)
  opposite = ~general & (cosine < 0)
  axis = np.where(opposite[..., None], perp, axis)
  sine = np.where(opposite, 0.0, sine)
  cosine = np.where(opposite, -1.0, cosine)
  # Rodrigues: R = I + sin K + (1 - cos) K^2, K the cross-product matrix of the unit axis.
  k = _cross_matrix(axis)
  eye = np.broadcast_to(np.eye(3), k.shape)
  rot = eye + sine[..., None, None] * k + (1.0 - cosine)[..., None, None] * (k @ k)
  identity = ~has_direction | (~general & (cosine >= 0))
  return np.where(identity[..., None, None], eye, rot)


def _cross_matrix(a: np.ndarray) -> np.ndarray:
  """[..., 3] -> [..., 3, 3] with _cross_matrix(a) @ b == cross(a, b)."""
  zero = np.zeros(a.shape[:-1])
  ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
  return np.stack([np.stack([zero, -az, ay], -1),
                   np.stack([az, zero, -ax], -1),
                   np.stack([-ay, ax, zero], -1)], -2)


def _checked(x, lengths, num_joints: int, path) -> tuple[np.ndarray, np.ndarray]:
  """Shapes and ranges, with a one-line DataError instead of a numpy traceback."""
  shape = getattr(x, 'shape', None)
  if shape is None or len(shape) != 5 or shape[-1] not in (2, 3):
    raise DataError(path, f'x must have shape [N, M, T, V, 3] (3D) or [N, M, T, V, 2] (2D '
                    f'keypoints), got {shape}', key='x')
  if shape[3] != num_joints:
    raise DataError(path, f'x has {shape[3]} joints but the layout has {num_joints}', key='x')
  lengths = np.asarray(lengths)
  if lengths.shape != (shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
    raise DataError(path, f'lengths must be integers of shape [{shape[0]}], got '
                    f'{lengths.dtype} {list(lengths.shape)}', key='lengths')
  bad = (lengths < 0) | (lengths > shape[2])
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise DataError(path, f'lengths = {lengths[i]} is outside 0..{shape[2]}', key='lengths',
                    sample=i)
  return x, lengths.astype(np.int32)


def _mask_beyond_lengths(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  inside = np.arange(x.shape[2])[None, :] < lengths[:, None]
  return x * inside[:, None, :, None, None]


def _inside(lengths: np.ndarray, num_frames: int) -> np.ndarray:
  """bool [n, 1, T, 1]: frame index below the sample's length."""
  return (np.arange(num_frames)[None, :] < lengths[:, None])[:, None, :, None]


def _tracked_joints(x: np.ndarray) -> np.ndarray:
  """[..., V, C] -> bool [..., V]: the joint has a non-zero coordinate.

  Strided comparisons are several times faster than `.any(-1)` over an axis of length 3.
  """
  tracked = (x[..., 0] != 0) | (x[..., 1] != 0)
  return tracked | (x[..., 2] != 0) if x.shape[-1] > 2 else tracked


def _agcn(x, lengths, layout: Layout, repeat_to_end: bool, out: np.ndarray, score=None,
          score_out=None) -> np.ndarray:
  """2s-AGCN pre_normalization of one chunk into `out`; returns the new lengths."""
  n, m, t = x.shape[:3]
  frame = np.arange(t)
  tracked = _tracked_joints(x) & _inside(lengths, t)           # [n, m, t, V]
  present = tracked.any(-1)                                     # [n, m, t]
  person_present = present.any(-1)                              # [n, m]
  # (a) A person whose first frame is empty: all its valid frames, in order, move to the front.
  compact = person_present & ~present[..., 0]
  valid_first = np.argsort(~present, axis=-1, kind='stable')
  order = np.where(compact[..., None], valid_first, frame)
  present = np.take_along_axis(present, order, -1)
  # Then frames after the last valid one repeat frames [0, last]: source frame t mod (last+1).
  last = t - 1 - np.argmax(present[..., ::-1], axis=-1)
  source = np.take_along_axis(order, frame % (last + 1)[..., None], -1)
  end = np.full(n, t) if repeat_to_end else lengths
  keep = (frame < end[:, None])[:, None, :] & person_present[..., None]
  pick = (np.arange(n)[:, None, None], np.arange(m)[None, :, None], source)
  y = x[pick]
  tracked = tracked[pick] & keep[..., None]
  if score is not None:
    score_out[...] = np.where(tracked, score[pick], 0)
  has_body = person_present.any(-1)
  new_lengths = np.where(has_body & repeat_to_end, t, lengths).astype(np.int32)
  # (b) Subtract person 0's centre joint, frame by frame; untracked joints stay zero (and an
  # untracked centre subtracts nothing).
  c = layout.norm_center
  centre = y[:, 0, :, c] * tracked[:, 0, :, c, None]          # [n, t, 3]
  y -= centre[:, None, :, None, :]
  y *= tracked[..., None]
  # (c, d) Rotations from person 0's first frame.
  _rotate(y, layout, out)
  return new_lengths


def _pyskl(x, lengths, layout: Layout, out: np.ndarray, score=None,
           score_out=None) -> np.ndarray:
  """pyskl PreNormalize3D of one chunk into `out`; returns the new lengths."""
  n, m, t = x.shape[:3]
  frame = np.arange(t)
  rows = np.arange(n)
  tracked = _tracked_joints(x) & _inside(lengths, t)           # [n, m, t, V]
  present = tracked.any(-1)                                     # [n, m, t]
  # The person with the most valid frames (the first on a tie) becomes person 0.
  main = np.argmax(present.sum(-1), axis=-1)
  perm = np.tile(np.arange(m), (n, 1))
  perm[rows, main] = 0
  perm[rows, 0] = main
  present_main = present[rows, main]                            # [n, t]
  # Keep only the frames where person 0 is present, in order.
  order = np.argsort(~present_main, axis=-1, kind='stable')
  kept = present_main.sum(-1)
  pick = (rows[:, None, None], perm[:, :, None], order[:, None, :])
  y = x[pick]
  tracked = tracked[pick] & (frame[None, :] < kept[:, None])[:, None, :, None]
  c = layout.norm_center
  centre = y[:, 0, 0, c] * tracked[:, 0, 0, c, None]          # [n, 3]
  y -= centre[:, None, None, None, :]
  has_body = kept > 0
  # A sample without a body stays all zero.
  kept_joints = tracked & has_body[:, None, None, None]
  y *= kept_joints[..., None]
  if score is not None:
    score_out[...] = np.where(kept_joints, score[pick], 0)
  _rotate(y, layout, out)
  return np.where(has_body, kept, lengths).astype(np.int32)


def _rotate(y: np.ndarray, layout: Layout, out: np.ndarray) -> None:
  """Writes y turned so that person 0's first-frame spine is on +z, then its shoulders on +x,
  into `out` (same shape); one batched matmul."""
  n = y.shape[0]
  first = y[:, 0, 0].astype(np.float64)                       # [n, V, 3]
  rot = np.broadcast_to(np.eye(3), (n, 3, 3))
  if layout.norm_zaxis is not None:
    bottom, top = layout.norm_zaxis
    rot = rotation_onto(first[:, top] - first[:, bottom], (0, 0, 1))
  if layout.norm_xaxis is not None:
    right, left = layout.norm_xaxis
    shoulders = np.einsum('nij,nj->ni', rot, first[:, right] - first[:, left])
    rot = rotation_onto(shoulders, (1, 0, 0)) @ rot
  if layout.norm_zaxis is None and layout.norm_xaxis is None:
    out[...] = y
    return
  np.matmul(y.reshape(n, -1, 3), np.swapaxes(rot, 1, 2).astype(np.float32),
            out=out.reshape(n, -1, 3))
