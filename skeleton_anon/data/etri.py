"""ETRI-activity3D: a folder of `A###_P###_G###_C###.csv` files plus `gender_age.txt`.

Each CSV has a header row and one row per body per frame: `frameNum`, `bodyindexID`, then for
joints 1..25 the columns `joint<j>_3dX`, `joint<j>_3dY`, `joint<j>_3dZ` (and depth, orientation
and tracking columns, which are ignored). Columns are found by name, so their order may vary.

By default the reader follows the paper: the five two-person actions (A044-A048) and any sample
in which more than one body appears are left out and reported; `keep_multi_person=True` keeps
them, with the `max_persons` bodies that move most.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import SkeletonDataset, validate
from skeleton_anon.data.genders import genders_of, read_gender_file
from skeleton_anon.data.ntu import parse_sample_name
from skeleton_anon.errors import DataError

TWO_PERSON_ACTIONS = frozenset(range(44, 49))  # A044-A048, 1-based as in the file names
NUM_JOINTS = 25

def read_csv(path, *, num_joints: int = NUM_JOINTS) -> tuple[np.ndarray, list[str]]:
  """One ETRI CSV -> (float32 [B, T, V, 3] with one slot per body id, sorted body ids).

  Frames are the distinct frameNum values in increasing order.

  Raises:
    DataError: naming the file and line for a missing column, a row of the wrong length, a
      non-numeric or non-finite coordinate, a repeated (frame, body) row, or no data rows.
  """
  with open(path, 'rb') as f:
    lines = f.read().splitlines()
  if not lines:
    raise DataError(path, 'the file is empty')
  first = lines[0][3:] if lines[0].startswith(b'\xef\xbb\xbf') else lines[0]  # UTF-8 BOM
  header = [h.strip().strip(b'"').decode(errors='replace') for h in first.split(b',')]
  index = {h: i for i, h in enumerate(header)}
  wanted = ['frameNum', 'bodyindexID'] + [f'joint{j}_3d{a}' for j in range(1, num_joints + 1)
                                          for a in 'XYZ']
  absent = [w for w in wanted if w not in index]
  if absent:
    raise DataError(path, f'line 1: header lacks column(s) {absent[:3]}' +
                    (f' and {len(absent) - 3} more' if len(absent) > 3 else ''))
  rows = [(i, line) for i, line in enumerate(lines[1:], start=2) if line.strip()]
  if not rows:
    raise DataError(path, 'no data rows (no body in any frame)')
  ncol = len(header)
  tokens = b','.join(line for _, line in rows).split(b',')
  if len(tokens) != ncol * len(rows):
    for line_no, line in rows:
      if line.count(b',') + 1 != ncol:
        raise DataError(path, f'line {line_no}: {line.count(b",") + 1} values, the header has '
                        f'{ncol}')
  cols = [index[w] for w in wanted]
  body_ids = [t.strip() for t in tokens[cols[1]::ncol]]
  try:
    values = np.array([v for c in cols[:1] + cols[2:] for v in tokens[c::ncol]], np.float64)
  except ValueError:
    for line_no, line in rows:
      fields = line.split(b',')
      for c in cols[:1] + cols[2:]:
        try:
          float(fields[c])
        except ValueError:
          raise DataError(path, f'line {line_no}: {header[c]} is not a number '
                          f'({fields[c][:20].decode(errors="replace")!r})') from None
    raise
  values = values.reshape(1 + 3 * num_joints, len(rows)).T
  frame_num, xyz = values[:, 0], values[:, 1:].astype(np.float32)
  finite = np.isfinite(xyz).all(axis=1) & np.isfinite(frame_num)
  if not finite.all():
    raise DataError(path, f'line {rows[int(np.argmin(finite))][0]}: NaN or inf value')
  frames, frame_idx = np.unique(frame_num, return_inverse=True)
  bodies, body_idx = np.unique(np.asarray(body_ids), return_inverse=True)
  key = frame_idx * len(bodies) + body_idx
  if len(np.unique(key)) != len(key):
    first = int(np.flatnonzero(np.bincount(key) > 1)[0])
    dup = int(np.flatnonzero(key == first)[1])
    raise DataError(path, f'line {rows[dup][0]}: frame {frame_num[dup]:g} body '
                    f'{body_ids[dup].decode(errors="replace")} appears twice')
  out = np.zeros((len(bodies), len(frames), num_joints, 3), np.float32)
  # The CSV lists joints as X, Y, Z column groups per joint: [joint, axis] in that order.
  out[body_idx, frame_idx] = xyz.reshape(-1, num_joints, 3)
  return out, [b.decode(errors='replace') for b in bodies]


def load_sample(path, *, max_persons: int = 1, keep_multi_person: bool = False):
  """One CSV -> (x [max_persons, T, V, 3], fields) or `collect.Skipped` for a left-out sample."""
  name = os.path.splitext(os.path.basename(path))[0]
  fields = parse_sample_name(name)
  if not keep_multi_person and fields.get('action') in TWO_PERSON_ACTIONS:
    return collect.Skipped(name, f'two-person action A{fields["action"]:03d} (dropped as in '
                           'the paper; pass --keep_multi_person to keep it)')
  bodies, ids = read_csv(path)
  if len(ids) > 1 and not keep_multi_person:
    return collect.Skipped(name, f'{len(ids)} bodies appear (multi-body samples are dropped; '
                           'pass --keep_multi_person to keep them)')
  x = collect.select_persons(bodies, max_persons)
  if not np.any(x):
    raise DataError(path, 'all coordinates are zero')
  return x, fields


def list_csv_files(folder) -> list[str]:
  """Sorted ETRI sample CSVs under `folder` (recursive; names must parse as A_P_G_C)."""
  folder = os.fspath(folder)
  if not os.path.exists(folder):
    raise DataError(folder, 'input does not exist')
  found = []
  for root, _, files in os.walk(folder):
    found.extend(os.path.join(root, f) for f in files if f.lower().endswith('.csv'))
  if not found:
    raise DataError(folder, 'no .csv files found')
  for f in found:
    fields = parse_sample_name(os.path.basename(f))
    if 'performer' not in fields or 'action' not in fields:
      raise DataError(f, 'name does not follow ETRI A###_P###_G###_C### (performer and action '
                      'are needed)')
  return sorted(found, key=os.path.basename)


def read_etri(folder, *, gender_file=None, max_persons: int = 1, max_frames: int = 300,
              keep_multi_person: bool = False, workers: int = 1, on_error: str = 'stop',
              progress: bool = True, buffer: dict | None = None) -> SkeletonDataset:
  """Reads an ETRI-activity3D folder into a validated dataset.

  Args:
    folder: folder searched recursively for `A###_P###_G###_C###.csv`.
    gender_file: `gender_age.txt`; defaults to the one in `folder` when it exists. Without one
      the dataset has no gender array (meta['notes'] says so).
    max_persons, max_frames, workers, on_error, progress, buffer: as for `ntu.read_ntu`.
    keep_multi_person: keep two-person actions and multi-body samples.
  Returns:
    SkeletonDataset: action = A-1, subject = P-1, camera = C, gender per performer (-1 where
    the gender file has no entry), meta['group'] = G, meta['skipped'] with reasons. Call
    `collect.release(ds)` once done when the buffer may be memory-mapped.
  """
  folder = os.fspath(folder)
  files = list_csv_files(folder)
  notes = []
  if gender_file is None and os.path.isfile(os.path.join(folder, 'gender_age.txt')):
    gender_file = os.path.join(folder, 'gender_age.txt')
  genders = read_gender_file(gender_file) if gender_file is not None else None
  if genders is None:
    notes.append('no gender_age.txt found: the output has no gender array')
  load = functools.partial(load_sample, max_persons=max_persons,
                           keep_multi_person=keep_multi_person)
  names = [os.path.splitext(os.path.basename(f))[0] for f in files]
  got = collect.gather(files, names, load, persons=max_persons, frames=max_frames,
                       joints=NUM_JOINTS, workers=workers, on_error=on_error,
                       progress=progress, desc='reading ETRI .csv', buffer=buffer)
  try:
    if not got.names:
      raise DataError(folder, f'no usable sample ({len(got.skipped)} skipped)')
    x, lengths = got.buffer.arrays()
    info = got.infos
    performer = np.asarray([f['performer'] for f in info], np.int32)
    gender = None
    if genders is not None:
      gender, note = genders_of(performer, genders)
      notes += [note] if note else []

    def column(key):
      return np.asarray([f[key] for f in info], np.int32) if all(key in f for f in info) \
          else None

    ds = SkeletonDataset(
        x=x, lengths=lengths, action=np.asarray([f['action'] - 1 for f in info], np.int32),
        subject=performer - 1, gender=gender, layout='ntu25', names=np.asarray(got.names),
        camera=column('camera'))
    ds.meta.update(source='etri_csv', skipped=got.skipped, cropped=got.buffer.cropped,
                   group=column('group'), notes=notes, buffer=got.buffer)
    return validate(ds)
  except BaseException:
    got.buffer.close()
    raise
