"""MediaPipe Pose sequences: a folder of per-sequence `.npy` / `.json` files -> a dataset.

MediaPipe Pose writes nothing itself; what people save is one file per sequence:
  `.npy` float [T, 33, C]: C = 2 (x, y), 3 (x, y, z) or 4 (x, y, z, visibility);
  `.json` a list of T frames, each a list of 33 landmarks (`[x, y, z(, visibility)]` or
  `{"x", "y", "z", "visibility"}`, as MessageToDict writes them), a dict holding such a list
  under "landmarks" or "pose_landmarks", or null / [] when no pose was found.
A frame of NaN or zeros is a frame without a pose. `keypoint_dims` = 2 keeps (x, y) (the image
landmarks, normalised to [0, 1] of the frame), 3 keeps z too; visibility becomes the score.
Names, labels and bad files: data/keypoint_folders.py.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data import keypoint_folders as folders
from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.data.formats import NamePattern, checked_layout
from skeleton_anon.errors import ConfigError, DataError

MEDIAPIPE_EXTENSIONS = ('.npy', '.json')


def mediapipe_files(folder) -> list[tuple[str, str]]:
  """[(sequence name, file)] of the .npy / .json files below `folder`."""
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise DataError(folder, 'not a folder (one .npy or .json file per sequence expected)')
  found = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for f in sorted(files):
      stem, ext = os.path.splitext(f)
      if ext.lower() in MEDIAPIPE_EXTENSIONS:
        rel = os.path.relpath(os.path.join(root, stem), folder)
        found.append((rel.replace(os.sep, '/'), os.path.join(root, f)))
  if not found:
    raise DataError(folder, 'no .npy or .json keypoint files')
  return found


def _landmark(value, path, frame: int, joint: int) -> list[float]:
  if isinstance(value, dict):
    try:
      out = [float(value['x']), float(value['y']), float(value.get('z', 0.0))]
    except (KeyError, TypeError, ValueError):
      raise DataError(path, f'frame {frame}, landmark {joint}: needs numbers x, y (z, '
                      'visibility)') from None
    if 'visibility' in value:
      out.append(float(value['visibility']))
    return out
  if isinstance(value, (list, tuple)):
    try:
      return [float(v) for v in value]
    except (TypeError, ValueError):
      raise DataError(path, f'frame {frame}, landmark {joint}: holds non-numbers') from None
  raise DataError(path, f'frame {frame}, landmark {joint}: expected [x, y, z, visibility] or '
                  '{"x", "y", "z", "visibility"}')


def mediapipe_json(path) -> np.ndarray:
  """A MediaPipe .json sequence as float64 [T, V, C] (NaN rows for frames without a pose)."""
  content = folders.read_json(path)
  if isinstance(content, dict):
    content = next((content[k] for k in ('frames', 'landmarks', 'pose_landmarks')
                    if k in content), None)
  if not isinstance(content, list) or not content:
    raise DataError(path, 'expected a non-empty list of frames (each a list of landmarks)')
  rows, width, joints = [], None, None
  for t, frame in enumerate(content):
    if isinstance(frame, dict):
      frame = next((frame[k] for k in ('landmarks', 'pose_landmarks') if k in frame), None)
    if not frame:
      rows.append(None)
      continue
    if not isinstance(frame, list):
      raise DataError(path, f'frame {t}: expected a list of landmarks')
    values = [_landmark(v, path, t, j) for j, v in enumerate(frame)]
    lengths = {len(v) for v in values}
    if len(lengths) != 1 or (width is not None and lengths != {width}):
      raise DataError(path, f'frame {t}: landmarks have {sorted(lengths)} values, earlier '
                      f'ones {width}')
    width = lengths.pop()
    if joints is not None and len(values) != joints:
      raise DataError(path, f'frame {t}: {len(values)} landmarks, earlier frames {joints}')
    joints = len(values)
    rows.append(values)
  if joints is None:
    raise DataError(path, 'no frame holds a pose')
  return np.stack([np.full((joints, width), np.nan) if r is None else np.asarray(r, np.float64)
                   for r in rows])


def mediapipe_array(path) -> np.ndarray:
  """A MediaPipe sequence file (.npy or .json) as float64 [T, V, C]."""
  if path.lower().endswith('.json'):
    return mediapipe_json(path)
  try:
    arr = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise DataError(path, f'not a readable .npy array ({e})') from None
  if arr.ndim != 3 or arr.dtype.kind not in 'fiu':
    raise DataError(path, f'expected a numeric [T, V, C] array (frames, landmarks, x y z '
                    f'visibility), got {arr.dtype} {list(arr.shape)}')
  return arr.astype(np.float64)


def load_mediapipe(item, *, joints: int, layout: str, dims: int, with_score: bool):
  """One MediaPipe sequence (name, file) -> (x [1, T, V, dims], {'score', 'length'})."""
  name, path = item
  arr = mediapipe_array(path)
  t, v, c = arr.shape
  if v != joints:
    raise DataError(path, f'{v} landmarks, but layout {layout!r} has {joints}', name=name)
  if c not in (2, 3, 4) or c < dims:
    raise DataError(path, f'landmarks have {c} values; {dims}D keypoints need x, y'
                    f'{", z" if dims == 3 else ""} (C = 2, 3 or 4 with visibility last)',
                    name=name)
  empty = np.isnan(arr).all(axis=(1, 2))
  arr = np.where(empty[:, None, None], 0.0, arr)
  bad = ~np.isfinite(arr)
  if bad.any():
    frame = int(np.flatnonzero(bad.any(axis=(1, 2)))[0])
    raise DataError(path, f'frame {frame}: NaN or inf in a frame that has a pose', name=name)
  kp = arr[..., :dims].astype(np.float32)
  present = (kp != 0).any(-1)
  if c == 4:
    score = arr[..., 3]
    outside = (score < 0) | (score > 1)
    if outside.any():
      frame = int(np.flatnonzero(outside.any(axis=1))[0])
      raise DataError(path, f'frame {frame}: visibility {score[outside][0]:g} is outside '
                      '[0, 1]', name=name)
    score = np.where(present, score, 0.0).astype(np.float32)
  else:
    score = present.astype(np.float32)
  if not kp.any():
    raise DataError(path, 'all coordinates are zero (no pose in any frame)', name=name)
  info = {'length': t}
  if with_score:
    info['score'] = score[None]
  return kp[None], info


def read_mediapipe(folder, *, name_pattern: NamePattern | None = None,
                   layout: str | None = None, keypoint_dims: int = 2, max_frames: int | None = 300,
                   workers: int = 1, on_error: str = 'stop', progress: bool = True,
                   buffer: dict | None = None,
                   img_shape: tuple[int, int] | None = None) -> SkeletonDataset:
  """A folder of MediaPipe sequences (.npy / .json) -> one-person dataset (module docstring).

  keypoint_dims: 2 (x, y: image landmarks) or 3 (x, y, z). The score is the landmarks'
  visibility when the first file has one (C = 4), else there is none. img_shape: (height,
  width) for every sample; MediaPipe's image landmarks are fractions of the frame, so (1, 1)
  makes the 'image' normalisation map the frame onto [-1, 1].
  """
  if keypoint_dims not in (2, 3):
    raise ConfigError(f'--keypoint_dims must be 2 or 3, got {keypoint_dims}')
  folder = os.fspath(folder)
  items, skipped = folders.matching(mediapipe_files(folder), name_pattern, on_error, folder)
  if not items:
    raise DataError(folder, 'no sequence left to read')
  first = mediapipe_array(items[0][1])
  joints = first.shape[1]
  layout = checked_layout(layout, joints, keypoint_dims, items[0][1])
  with_score = first.shape[2] == 4
  frames = max_frames or folders.longest(_frame_count(path) for _, path in items)
  load = functools.partial(load_mediapipe, joints=joints, layout=layout, dims=keypoint_dims,
                           with_score=with_score)
  gathered = collect.gather(items, [name for name, _ in items], load, persons=1, frames=frames,
                            joints=joints, channels=keypoint_dims, scores=with_score,
                            workers=workers, on_error=on_error, progress=progress,
                            desc='mediapipe', buffer=buffer)
  return folders.dataset_from(gathered, skipped, layout=layout, pattern=name_pattern,
                              folder=folder, source='mediapipe', img_shape=img_shape)


def _frame_count(path) -> int:
  try:
    return mediapipe_array(path).shape[0]
  except DataError:
    return 1            # the loader reports the file's problem
