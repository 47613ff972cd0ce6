r"""Folders of per-sequence keypoint files as pose estimators write them: OpenPose and MediaPipe.

OpenPose (`--write_json DIR`) writes one JSON file per frame, named `<stem>_<frame>_keypoints.json`
(`<frame>` 12 digits for a video), holding `{"people": [{"person_id": [-1],
"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`: BODY_25 gives 25 (x, y, c) triples,
c the confidence in [0, 1], and an undetected joint is (0, 0, 0). A sequence is either a
subfolder holding such files or, in a flat folder, all files of one `<stem>`; frames are ordered
by their number. OpenPose does not keep a person's index across frames unless it ran with
`--tracking` (then `person_id` says who is who); otherwise each frame's people are linked to the
sequence's tracks by the nearest centroid, and the `max_persons` tracks that move most are kept.

MediaPipe Pose writes nothing itself; what people save is one file per sequence:
  `.npy` float [T, 33, C]: C = 2 (x, y), 3 (x, y, z) or 4 (x, y, z, visibility);
  `.json` a list of T frames, each a list of 33 landmarks (`[x, y, z(, visibility)]` or
  `{"x", "y", "z", "visibility"}`, as MessageToDict writes them), a dict holding such a list
  under "landmarks" or "pose_landmarks", or null / [] when no pose was found.
A frame of NaN or zeros is a frame without a pose. `keypoint_dims` = 2 keeps (x, y) (the image
landmarks, normalised to [0, 1] of the frame), 3 keeps z too; visibility becomes the score.

Subject and action come from each sequence's name (its path below the input folder, without
the extension) by a user's `formats.NamePattern` (`--name_pattern='P(?P<subject>\d+)_A(?P<action>\d+)'`),
or, without one, from NTU/ETRI-style names (`P###`, `A###`). Without an action every sample is
action 0 (a privacy-only run). Every bad file stops with one line naming it (or, with
on_error='skip', is left out and listed).
"""

from __future__ import annotations

import functools
import json
import os
import re

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import SkeletonDataset, validate
from skeleton_anon.data.formats import NamePattern, checked_layout
from skeleton_anon.data.ntu import parse_sample_name
from skeleton_anon.errors import ConfigError, DataError

OPENPOSE_SUFFIX = '_keypoints.json'
_FRAME_NUMBER = re.compile(r'^(.*?)_?(\d+)$')
MEDIAPIPE_EXTENSIONS = ('.npy', '.json')


# ---- finding the sequences -------------------------------------------------------------------

def openpose_sequences(folder) -> list[tuple[str, list[str]]]:
  """[(sequence name, frame files in frame order)] of an OpenPose output folder."""
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise DataError(folder, 'not a folder (OpenPose --write_json output expected)')
  groups: dict[str, list[tuple[int, str]]] = {}
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    frames = sorted(f for f in files if f.endswith(OPENPOSE_SUFFIX))
    if not frames:
      continue
    rel = os.path.relpath(root, folder)
    for f in frames:
      stem = f[:-len(OPENPOSE_SUFFIX)]
      m = _FRAME_NUMBER.match(stem)
      number = int(m.group(2)) if m else 0
      if rel != '.':
        # A subfolder is one sequence (its files may be named after the video or not).
        name = rel.replace(os.sep, '/')
      else:
        name = m.group(1) if m and m.group(1) else stem
      groups.setdefault(name, []).append((number, os.path.join(root, f)))
  if not groups:
    raise DataError(folder, f'no *{OPENPOSE_SUFFIX} files (OpenPose --write_json output)')
  return [(name, [p for _, p in sorted(frames)]) for name, frames in sorted(groups.items())]


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


# ---- OpenPose ----------------------------------------------------------------------------------

def _read_json(path):
  try:
    with open(path, 'rb') as f:
      return json.loads(f.read())
  except (OSError, ValueError) as e:
    raise DataError(path, f'not a readable JSON file ({e})') from None


def openpose_frame(path, joints: int, layout: str) -> tuple[np.ndarray, list[int]]:
  """(people [P, V, 3] of (x, y, c), person ids (-1 untracked)) of one OpenPose frame file."""
  content = _read_json(path)
  people = content.get('people') if isinstance(content, dict) else None
  if not isinstance(people, list):
    raise DataError(path, "expected OpenPose's {\"people\": [...]} (a --write_json frame file)")
  out, ids = [], []
  for j, person in enumerate(people):
    values = person.get('pose_keypoints_2d') if isinstance(person, dict) else None
    if not isinstance(values, list):
      raise DataError(path, f'person {j}: no pose_keypoints_2d list')
    if not values:
      continue
    try:
      arr = np.asarray(values, np.float64)
    except (TypeError, ValueError):
      raise DataError(path, f'person {j}: pose_keypoints_2d holds non-numbers') from None
    if arr.ndim != 1 or arr.size % 3:
      raise DataError(path, f'person {j}: pose_keypoints_2d has {arr.size} values, not (x, y, '
                      'c) triples')
    if arr.size // 3 != joints:
      raise DataError(path, f'person {j}: {arr.size // 3} joints, but layout {layout!r} has '
                      f'{joints}')
    arr = arr.reshape(joints, 3)
    if not np.isfinite(arr).all():
      raise DataError(path, f'person {j}: pose_keypoints_2d contains NaN or inf')
    c = arr[:, 2]
    if ((c < 0) | (c > 1)).any():
      raise DataError(path, f'person {j}: confidence {c[(c < 0) | (c > 1)][0]:g} is outside '
                      '[0, 1]')
    out.append(arr)
    pid = person.get('person_id', -1)
    pid = pid[0] if isinstance(pid, list) and pid else pid
    ids.append(int(pid) if isinstance(pid, (int, float)) else -1)
  return np.asarray(out, np.float64).reshape(-1, joints, 3), ids


def link_people(frames: list[tuple[np.ndarray, list[int]]]) -> np.ndarray:
  """Per-frame people -> tracks [K, T, V, 3]: by person_id when every person has one (OpenPose
  --tracking), else each frame's people join the track whose last centroid is nearest (closest
  pairs first; a person left over starts a new track)."""
  joints = next((p.shape[1] for p, _ in frames if len(p)), 0)
  t = len(frames)
  tracked = all(i >= 0 for _, ids in frames for i in ids)
  tracks: list[np.ndarray] = []
  keys: dict[int, int] = {}
  centroids: list[np.ndarray] = []
  for frame, (people, ids) in enumerate(frames):
    if not len(people):
      continue
    valid = (people[:, :, 2] > 0) | (people[:, :, :2] != 0).any(-1)        # [P, V]
    centre = np.stack([people[p, valid[p], :2].mean(0) if valid[p].any() else
                       np.full(2, np.nan) for p in range(len(people))])
    if tracked:
      assignment = {}
      for p, pid in enumerate(ids):
        if pid not in keys:
          keys[pid] = len(tracks)
          tracks.append(np.zeros((t, joints, 3)))
          centroids.append(centre[p])
        assignment[p] = keys[pid]
    else:
      assignment = {}
      if centroids:
        dist = np.linalg.norm(centre[:, None, :] - np.asarray(centroids)[None, :, :], axis=-1)
        dist = np.where(np.isnan(dist), np.inf, dist)
        used = set()
        for flat in np.argsort(dist, axis=None, kind='stable'):
          p, k = np.unravel_index(flat, dist.shape)
          if p in assignment or k in used or not np.isfinite(dist[p, k]):
            continue
          assignment[int(p)] = int(k)
          used.add(int(k))
      for p in range(len(people)):
        if p not in assignment and valid[p].any():
          assignment[p] = len(tracks)
          tracks.append(np.zeros((t, joints, 3)))
          centroids.append(centre[p])
    for p, k in assignment.items():
      tracks[k][frame] = people[p]
      if np.isfinite(centre[p]).all():
        centroids[k] = centre[p]
  if not tracks:
    return np.zeros((0, t, joints, 3))
  return np.stack(tracks)


def load_openpose(item, *, joints: int, layout: str, max_persons: int):
  """One OpenPose sequence (name, frame files) -> (x [m, T, V, 2], {'score', 'length'})."""
  name, files = item
  frames = [openpose_frame(f, joints, layout) for f in files]
  tracks = link_people(frames)
  where = os.path.dirname(files[0])
  if not len(tracks):
    raise DataError(where, 'no person in any frame', name=name)
  kp = tracks[..., :2].astype(np.float32)
  order = collect.person_order(kp, max_persons)
  score = tracks[order, :, :, 2].astype(np.float32)
  kp = kp[order] * (score > 0)[..., None]                     # undetected joints are exactly 0
  if not kp.any():
    raise DataError(where, 'all keypoints are zero (nothing detected)', name=name)
  return kp, {'score': score, 'length': len(files)}


# ---- MediaPipe ---------------------------------------------------------------------------------

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
  content = _read_json(path)
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


# ---- readers -----------------------------------------------------------------------------------

def _labels(names, pattern: NamePattern | None, path) -> dict[str, np.ndarray]:
  """subject, action (0 when no name carries one) and whatever else the names give."""
  if pattern is not None:
    parsed = [pattern.parse(n, path, i) for i, n in enumerate(names)]
  else:
    parsed = []
    for i, n in enumerate(names):
      f = parse_sample_name(n)
      if 'performer' not in f:
        raise DataError(path, 'name carries no performer id (P###); give --name_pattern with '
                        'a (?P<subject>...) group', sample=i, name=n)
      parsed.append({'subject': f['performer'] - 1,
                     **({'action': f['action'] - 1} if 'action' in f else {}),
                     **{k: f[k] for k in ('camera', 'setup', 'replication') if k in f}})
  out = {}
  for key in ('subject', 'action', 'gender', 'camera', 'setup', 'replication'):
    if all(key in f for f in parsed):
      out[key] = np.asarray([f[key] for f in parsed], np.int32)
  if 'action' not in out:
    out['action'] = np.zeros(len(names), np.int32)
  return out


def _matching(items, pattern: NamePattern | None, on_error: str, folder):
  """The items whose names the pattern matches, and Skipped entries for the others."""
  if pattern is None:
    return items, []
  pattern.check_any([name for name, _ in items], folder)
  kept, skipped = [], []
  for name, value in items:
    if pattern.matches(name):
      kept.append((name, value))
    elif on_error == 'skip':
      skipped.append(collect.Skipped(name, f'does not match --name_pattern {pattern.pattern!r}'))
    else:
      raise DataError(folder, f'name does not match --name_pattern {pattern.pattern!r}',
                      name=name)
  return kept, skipped


def _finish(gathered: collect.Gathered, skipped, *, layout: str, pattern, folder, source: str,
            img_shape, note: str | None = None) -> SkeletonDataset:
  buf = gathered.buffer
  try:
    if not gathered.names:
      raise DataError(folder, 'no sequence could be read')
    x, lengths = buf.arrays()
    labels = _labels(gathered.names, pattern, folder)
    n = len(gathered.names)
    ds = SkeletonDataset(
        x=x, lengths=np.maximum(lengths, 1), layout=layout, names=np.asarray(gathered.names),
        score=buf.scores(),
        img_shape=None if img_shape is None else np.tile(np.int32(img_shape), (n, 1)),
        **labels)
    notes = [] if note is None else [note]
    if not labels['action'].any() and (pattern is None or 'action' not in pattern.fields):
      notes.append('the names carry no action: every sample is action 0 (a privacy-only run)')
    ds.meta.update(source=source, path=os.fspath(folder), skipped=skipped + gathered.skipped,
                   cropped=buf.cropped, buffer=buf, notes=notes)
    return validate(ds, folder)
  except BaseException:
    buf.close()
    raise


def _longest(counts) -> int:
  return max(1, max(counts))


def read_openpose(folder, *, name_pattern: NamePattern | None = None, layout: str | None = None,
                  max_persons: int = 2, max_frames: int | None = 300, workers: int = 1,
                  on_error: str = 'stop', progress: bool = True, buffer: dict | None = None,
                  img_shape: tuple[int, int] | None = None) -> SkeletonDataset:
  """An OpenPose --write_json folder -> 2D dataset with scores (module docstring).

  layout: None picks it from the joint count (BODY_25: openpose25). img_shape: the videos'
  (height, width) in pixels, for every sample (OpenPose's files do not say it).
  """
  folder = os.fspath(folder)
  items, skipped = _matching(openpose_sequences(folder), name_pattern, on_error, folder)
  joints = _openpose_joints(items, folder)
  layout = checked_layout(layout, joints, 2, items[0][1][0] if items else folder)
  frames = max_frames or _longest(len(files) for _, files in items)
  load = functools.partial(load_openpose, joints=joints, layout=layout, max_persons=max_persons)
  gathered = collect.gather(items, [name for name, _ in items], load, persons=max_persons,
                            frames=frames, joints=joints, channels=2, scores=True,
                            workers=workers, on_error=on_error, progress=progress,
                            desc='openpose', buffer=buffer)
  return _finish(gathered, skipped, layout=layout, pattern=name_pattern, folder=folder,
                 source='openpose', img_shape=img_shape)


def _openpose_joints(items, folder) -> int:
  """The joint count of the first person found (pose_keypoints_2d length / 3)."""
  for _, files in items:
    for f in files:
      content = _read_json(f)
      people = content.get('people') if isinstance(content, dict) else None
      for person in people or []:
        values = person.get('pose_keypoints_2d') if isinstance(person, dict) else None
        if isinstance(values, list) and values:
          if len(values) % 3:
            raise DataError(f, f'pose_keypoints_2d has {len(values)} values, not (x, y, c) '
                            'triples')
          return len(values) // 3
  raise DataError(folder, 'no OpenPose file holds a person with pose_keypoints_2d')


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
  items, skipped = _matching(mediapipe_files(folder), name_pattern, on_error, folder)
  if not items:
    raise DataError(folder, 'no sequence left to read')
  first = mediapipe_array(items[0][1])
  joints = first.shape[1]
  layout = checked_layout(layout, joints, keypoint_dims, items[0][1])
  with_score = first.shape[2] == 4
  frames = max_frames or _longest(_frame_count(path) for _, path in items)
  load = functools.partial(load_mediapipe, joints=joints, layout=layout, dims=keypoint_dims,
                           with_score=with_score)
  gathered = collect.gather(items, [name for name, _ in items], load, persons=1, frames=frames,
                            joints=joints, channels=keypoint_dims, scores=with_score,
                            workers=workers, on_error=on_error, progress=progress,
                            desc='mediapipe', buffer=buffer)
  return _finish(gathered, skipped, layout=layout, pattern=name_pattern, folder=folder,
                 source='mediapipe', img_shape=img_shape)


def _frame_count(path) -> int:
  try:
    return mediapipe_array(path).shape[0]
  except DataError:
    return 1            # the loader reports the file's problem
