"""What a 2D pose estimator would report from the synthetic recordings: COCO-17 pixels and scores.

Most skeleton data recorded today comes from an RGB pose estimator (HRNet, RTMPose) rather than a
depth sensor: 17 COCO keypoints in image pixels, each with a confidence. `pose_estimator_view`
turns the generator's 3D camera-space `ntu25` skeletons into that: the COCO joints are taken from
the Kinect ones (face points built from the head, neck and shoulders), projected through a pinhole
camera into a 1920x1080 image (x right, y down), and given an estimator's errors: pixel jitter,
confidences that are lower on wrists and ankles and on a face turned away from the camera, and
short occlusions where the score drops and the keypoint wanders. Identity and gender stay in
the data the same way as in 3D (proportions, seen foreshortened, and motion).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.data.layouts import LAYOUTS

# 1080p video, a typical focal length in pixels for it.
IMAGE_SHAPE = (1080, 1920)   # (height, width), as pyskl's img_shape
FOCAL_PIXELS = 1050.0

_NTU = {name: i for i, name in enumerate(LAYOUTS['ntu25'].joint_names)}
# COCO body joints that exist in Kinect's skeleton (COCO index -> ntu25 joint).
_BODY = {5: 'shoulder_left', 6: 'shoulder_right', 7: 'elbow_left', 8: 'elbow_right',
         9: 'wrist_left', 10: 'wrist_right', 11: 'hip_left', 12: 'hip_right', 13: 'knee_left',
         14: 'knee_right', 15: 'ankle_left', 16: 'ankle_right'}
# Face points as offsets (metres) from the head along (forward, up, towards the left shoulder).
_FACE = {0: (0.09, -0.02, 0.0), 1: (0.075, 0.02, 0.032), 2: (0.075, 0.02, -0.032),
         3: (0.0, 0.0, 0.075), 4: (0.0, 0.0, -0.075)}
# Estimators are least sure of the extremities.
_HARD_JOINTS = (9, 10, 15, 16)


def _unit(v: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(v, axis=-1, keepdims=True)
  return v / np.maximum(norm, 1e-6)


def coco17_from_ntu25(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(3D COCO-17 joints [..., 17, 3], facing [...]): body joints copied, face points placed on
  the head. `facing` is the cosine between the face's forward direction and the direction
  towards the camera (camera at the origin, looking along +z): above 0 the face is visible."""
  head, neck = x[..., _NTU['head'], :], x[..., _NTU['neck'], :]
  up = _unit(head - neck)
  left = _unit(x[..., _NTU['shoulder_left'], :] - x[..., _NTU['shoulder_right'], :])
  forward = _unit(np.cross(left, up))
  out = np.zeros(x.shape[:-2] + (17, 3), np.float32)
  for coco, ntu in _BODY.items():
    out[..., coco, :] = x[..., _NTU[ntu], :]
  for coco, (f, u, l) in _FACE.items():
    out[..., coco, :] = head + f * forward + u * up + l * left
  to_camera = _unit(-head)
  facing = np.sum(forward * to_camera, axis=-1)
  return out, facing


def pose_estimator_view(ds: SkeletonDataset, *, seed: int = 0, pixel_noise: float = 2.0,
                        occlusion: float = 0.02) -> SkeletonDataset:
  """The `coco17` 2D version of an `ntu25` camera-space dataset, with keypoint scores.

  Args:
    ds: camera-space 3D skeletons (metres, depth along +z), as `synthetic.make_synthetic` gives
      before normalisation.
    seed: the estimator's errors are a function of it.
    pixel_noise: keypoint jitter, pixels (standard deviation at score 1; larger when unsure).
    occlusion: probability per (sample, person, joint) of one occlusion of 5-20 frames.

  Returns:
    The same samples and labels with x float32 [N, M, T, 17, 2] in pixels (x right, y down),
    score float32 [N, M, T, 17] in [0, 1] (0 on padded frames and absent persons),
    layout 'coco17' and img_shape [N, 2] = (1080, 1920) (height, width).
  """
  if ds.layout != 'ntu25' or ds.num_channels != 3:
    raise ValueError(f'pose_estimator_view needs 3D ntu25 data, got {ds.layout} with '
                     f'C={ds.num_channels}')
  rng = np.random.default_rng([seed, 2])
  present = np.any(ds.x != 0, axis=(3, 4))                                 # [N, M, T]
  joints, facing = coco17_from_ntu25(ds.x.astype(np.float64))               # [N, M, T, 17, 3]
  h, w = IMAGE_SHAPE
  depth = np.maximum(joints[..., 2], 0.3)
  u = w / 2 + FOCAL_PIXELS * joints[..., 0] / depth
  v = h / 2 - FOCAL_PIXELS * joints[..., 1] / depth
  pix = np.stack([u, v], axis=-1)
  n, m, t = present.shape
  score = np.clip(rng.normal(0.9, 0.05, (n, m, t, 17)), 0.0, 1.0)
  score[..., list(_HARD_JOINTS)] -= 0.1
  # A face turned away: the face points are guessed, with low confidence.
  away = np.clip(-facing, 0.0, 1.0)[..., None]                              # [N, M, T, 1]
  score[..., :5] *= 1.0 - 0.8 * away
  starts = rng.integers(0, t, (n, m, 17))
  spans = rng.integers(5, 21, (n, m, 17))
  hit = rng.random((n, m, 17)) < occlusion
  frames = np.arange(t)[None, None, :, None]
  occluded = (hit[:, :, None] & (frames >= starts[:, :, None])
              & (frames < (starts + spans)[:, :, None]))                     # [N, M, T, 17]
  score = np.where(occluded, rng.uniform(0.0, 0.25, score.shape), score)
  score = np.clip(score, 0.0, 1.0)
  spread = pixel_noise / np.maximum(score, 0.1)
  pix = pix + rng.standard_normal(pix.shape) * spread[..., None]
  pix += np.where(occluded[..., None], rng.normal(0.0, 15.0, (n, m, 1, 17, 2)), 0.0)
  mask = present[..., None]
  x = np.where(mask[..., None], pix, 0.0).astype(np.float32)
  score = np.where(mask, score, 0.0).astype(np.float32)
  img_shape = np.tile(np.asarray(IMAGE_SHAPE, np.int32), (n, 1))
  return dataclasses.replace(ds, x=x, score=score, layout='coco17', edges=None,
                             img_shape=img_shape, meta=dict(ds.meta, keypoints='coco17_2d'))
