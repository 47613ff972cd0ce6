r"""OpenPose output folders: per-frame `*_keypoints.json` files -> a 2D dataset with scores.

OpenPose (`--write_json DIR`) writes one JSON file per frame, named `<stem>_<frame>_keypoints.json`
(`<frame>` 12 digits for a video), holding `{"people": [{"person_id": [-1],
"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}`: BODY_25 gives 25 (x, y, c) triples,
c the confidence in [0, 1], and an undetected joint is (0, 0, 0). A sequence is either a
subfolder holding such files or, in a flat folder, all files of one `<stem>`; frames are ordered
by their number. OpenPose does not keep a person's index across frames unless it ran with
`--tracking` (then `person_id` says who is who); otherwise each frame's people are linked to the
sequence's tracks by the nearest centroid, and the `max_persons` tracks that move most are kept.
Names, labels and bad files: data/keypoint_folders.py.
"""

from __future__ import annotations

import functools
import os
import re

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data import keypoint_folders as folders
from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.data.formats import NamePattern, checked_layout
from skeleton_anon.errors import DataError

OPENPOSE_SUFFIX = '_keypoints.json'
_FRAME_NUMBER = re.compile(r'^(.*?)_?(\d+)$')


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


def openpose_frame(path, joints: int, layout: str) -> tuple[np.ndarray, list[int]]:
  """(people [P, V, 3] of (x, y, c), person ids (-1 untracked)) of one OpenPose frame file."""
  content = folders.read_json(path)
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


def read_openpose(folder, *, name_pattern: NamePattern | None = None, layout: str | None = None,
                  max_persons: int = 2, max_frames: int | None = 300, workers: int = 1,
                  on_error: str = 'stop', progress: bool = True, buffer: dict | None = None,
                  img_shape: tuple[int, int] | None = None) -> SkeletonDataset:
  """An OpenPose --write_json folder -> 2D dataset with scores (module docstring).

  layout: None picks it from the joint count (BODY_25: openpose25). img_shape: the videos'
  (height, width) in pixels, for every sample (OpenPose's files do not say it).
  """
  folder = os.fspath(folder)
  items, skipped = folders.matching(openpose_sequences(folder), name_pattern, on_error,
                                    folder)
  joints = _openpose_joints(items, folder)
  layout = checked_layout(layout, joints, 2, items[0][1][0] if items else folder)
  frames = max_frames or folders.longest(len(files) for _, files in items)
  load = functools.partial(load_openpose, joints=joints, layout=layout, max_persons=max_persons)
  gathered = collect.gather(items, [name for name, _ in items], load, persons=max_persons,
                            frames=frames, joints=joints, channels=2, scores=True,
                            workers=workers, on_error=on_error, progress=progress,
                            desc='openpose', buffer=buffer)
  return folders.dataset_from(gathered, skipped, layout=layout, pattern=name_pattern,
                              folder=folder, source='openpose', img_shape=img_shape)


def _openpose_joints(items, folder) -> int:
  """The joint count of the first person found (pose_keypoints_2d length / 3)."""
  for _, files in items:
    for f in files:
      content = folders.read_json(f)
      people = content.get('people') if isinstance(content, dict) else None
      for person in people or []:
        values = person.get('pose_keypoints_2d') if isinstance(person, dict) else None
        if isinstance(values, list) and values:
          if len(values) % 3:
            raise DataError(f, f'pose_keypoints_2d has {len(values)} values, not (x, y, c) '
                            'triples')
          return len(values) // 3
  raise DataError(folder, 'no OpenPose file holds a person with pose_keypoints_2d')
