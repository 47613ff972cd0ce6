"""NTU RGB+D 60/120 raw `.skeleton` files: a fast, strict parser and a parallel folder reader.

File layout (text, LF or CRLF): the frame count; per frame a body count (0 allowed); per body a
line of 10 body values, a joint-count line, then one line per joint of 12 values of which the
first three are x, y, z in metres (camera space). See REFERENCE_NOTES "Data formats".

Speed: the reference parser calls float() on every value of every line (about 6,000 frames/s).
Here a canonical file (LF/CRLF lines, single spaces between values) is read by `_read_fast` with
a few vectorised NumPy passes over its bytes and one Python step per body; only x, y, z are
converted, by exact integer arithmetic on the digits (`_decimals`). Any other file, valid or not,
goes to `_read_exact`, which splits lines and values like the reference and names the line of the
first problem; the fast reader accepts only files the exact one reads to the same bits.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Iterable, Sequence

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.ntu_fast import (VALUES_PER_BODY, VALUES_PER_JOINT, NotCanonical,
                                             place_bodies, read_fast)
from skeleton_anon.data.dataset import SkeletonDataset, validate
from skeleton_anon.data.genders import genders_of, read_gender_file
from skeleton_anon.errors import DataError


_NTU_NAME = re.compile(r'S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})')
_ETRI_NAME = re.compile(r'A(\d{3})_P(\d{3})_G(\d{3})_C(\d{3})')
_FIELD = {key: re.compile(rf'(?:^|[^A-Za-z]){letter}(\d+)')
          for key, letter in (('performer', 'P'), ('action', 'A'), ('camera', 'C'),
                              ('setup', 'S'), ('replication', 'R'))}


def parse_sample_name(name: str) -> dict[str, int]:
  """Recording fields from a sample name, as the numbers written in it (1-based).

  Understands NTU `SsssCcccPpppRrrrAaaa` (setup, camera, performer, replication, action), ETRI
  `A###_P###_G###_C###` (action, performer, group, camera), and otherwise any of `P<n>`, `A<n>`,
  `C<n>`, `S<n>`, `R<n>` standing after a non-letter (e.g. `clip7_P003_A012`). Missing fields are
  absent from the result.
  """
  base = os.path.basename(str(name))
  m = _NTU_NAME.search(base)
  if m:
    return dict(zip(('setup', 'camera', 'performer', 'replication', 'action'),
                    map(int, m.groups())))
  m = _ETRI_NAME.search(base)
  if m:
    return dict(zip(('action', 'performer', 'group', 'camera'), map(int, m.groups())))
  fields = {}
  for key, pattern in _FIELD.items():
    found = pattern.search(base)
    if found:
      fields[key] = int(found.group(1))
  return fields


def _fail(path, problem: str, line: int | None = None):
  raise DataError(path, (f'line {line}: ' if line is not None else '') + problem)


def _count(lines: list[bytes], i: int, path, what: str) -> int:
  """The integer on line i (0-based), or a DataError saying the file ends or the line is bad."""
  if i >= len(lines):
    _fail(path, f'truncated: the file ends after {len(lines)} lines, before {what}')
  try:
    value = int(lines[i])
  except ValueError:
    _fail(path, f'expected {what} (an integer), got {lines[i].strip()[:40].decode(errors="replace")!r}',
          i + 1)
  if value < 0:
    _fail(path, f'{what} is negative ({value})', i + 1)
  return value


def _walk(lines: list[bytes], path, num_joints: int):
  """Reads the frame/body structure; returns (num_frames, [(frame, slot, first_joint_line)])."""
  num_frames = _count(lines, 0, path, 'the frame count')
  if num_frames == 0:
    _fail(path, 'the file announces zero frames', 1)
  blocks = []
  p = 1
  for t in range(num_frames):
    bodies = _count(lines, p, path, f'the body count of frame {t}')
    p += 1
    for b in range(bodies):
      if p >= len(lines):
        _fail(path, f'truncated: frame {t} announces {bodies} bodies but the file ends before '
              f'body {b}')
      if len(lines[p].split()) != VALUES_PER_BODY:
        _fail(path, f'frame {t} body {b}: the body line has {len(lines[p].split())} values, '
              f'expected {VALUES_PER_BODY}', p + 1)
      joints = _count(lines, p + 1, path, f'the joint count of frame {t} body {b}')
      if joints != num_joints:
        _fail(path, f'frame {t} body {b}: {joints} joints, expected {num_joints}', p + 2)
      start = p + 2
      p = start + joints
      if p > len(lines):
        _fail(path, f'truncated: frame {t} body {b} has {len(lines) - start} of {joints} joint '
              'lines')
      blocks.append((t, b, start))
  if any(line.strip() for line in lines[p:]):
    _fail(path, f'{len(lines) - p} lines follow the {num_frames} announced frames (the counts '
          'do not match the data)', p + 1)
  return num_frames, blocks


def _joint_xyz(lines: list[bytes], blocks, num_joints: int, path) -> np.ndarray:
  """float32 [len(blocks), V, 3]: x, y, z of every joint line, each line checked to hold 12
  values (split on any whitespace) and finite numbers in its first three."""
  tokens = []
  for (t, b, start) in blocks:
    for j in range(num_joints):
      values = lines[start + j].split()
      if len(values) != VALUES_PER_JOINT:
        _fail(path, f'frame {t} body {b} joint {j}: {len(values)} values, expected '
              f'{VALUES_PER_JOINT}', start + j + 1)
      tokens += values[:3]
  try:
    xyz = np.array(tokens, dtype=np.float64)
  except ValueError:
    for k, value in enumerate(tokens):
      try:
        float(value)
      except ValueError:
        t, b, start = blocks[k // (3 * num_joints)]
        j = k // 3 % num_joints
        _fail(path, f'frame {t} body {b} joint {j}: non-numeric coordinate '
              f'{value[:20].decode(errors="replace")!r}', start + j + 1)
    raise
  with np.errstate(over='ignore'):                   # too large for float32: reported below
    xyz = xyz.reshape(-1, 3).astype(np.float32)                     # [L, 3]
  finite = np.isfinite(xyz).all(axis=1)
  if not finite.all():
    k = int(np.flatnonzero(~finite)[0])
    t, b, start = blocks[k // num_joints]
    _fail(path, f'frame {t} body {b} joint {k % num_joints}: coordinate is NaN or inf',
          start + k % num_joints + 1)
  return xyz.reshape(len(blocks), num_joints, 3)


def _read_exact(data: bytes, path, num_joints: int) -> np.ndarray:
  """Any file bytes.split() reads: line by line, naming the line of the first problem."""
  lines = data.split(b'\n')
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    _fail(path, 'the file is empty')
  num_frames, blocks = _walk(lines, path, num_joints)
  if not blocks:
    _fail(path, f'no body in any of the {num_frames} frames (NTU lists such samples in its '
          'missing-skeletons file: pass it as --missing_list, or use --on_error=skip)')
  xyz = _joint_xyz(lines, blocks, num_joints, path)
  frame, slot, _ = np.asarray(blocks).T
  return place_bodies(xyz, frame, slot, num_frames)


def read_skeleton(path, *, num_joints: int = 25, data: bytes | None = None) -> np.ndarray:
  """Parses one `.skeleton` file into float32 [B, T, V, 3].

  Body slot b holds the b-th body listed in each frame (as the 2s-AGCN reader does); B is the
  most bodies any frame lists. Absent bodies are zero. Values are bit-identical to float32 of
  Python's float() of the file's text.

  Raises:
    DataError: naming the file, and the frame/body/line, for truncation, bad counts,
      non-numeric or non-finite coordinates, zero frames, or no body at all.
  """
  if data is None:
    with open(path, 'rb') as f:
      data = f.read()
  try:
    return read_fast(data, num_joints)
  except NotCanonical:
    return _read_exact(data, path, num_joints)


def load_sample(path, *, max_persons: int = 2, num_joints: int = 25):
  """One file -> (x [max_persons, T, V, 3], fields parsed from the name)."""
  bodies = read_skeleton(path, num_joints=num_joints)
  x = collect.select_persons(bodies, max_persons)
  if not np.any(x):
    _fail(path, 'all coordinates are zero')
  return x, parse_sample_name(os.path.basename(path))


def read_missing_list(path) -> set[str]:
  """Sample names from the official "samples with missing skeletons" list (one per line).

  Blank lines and lines starting with '#' are ignored; a `.skeleton` suffix is optional.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(path, 'missing-skeletons list does not exist')
  with open(path, encoding='utf-8', errors='replace') as f:
    names = (line.strip() for line in f)
    return {_stem(n) for n in names if n and not n.startswith('#')}


def _stem(name: str) -> str:
  name = os.path.basename(name)
  return name[:-len('.skeleton')] if name.endswith('.skeleton') else name


def list_skeleton_files(folder) -> list[str]:
  """Sorted `.skeleton` files under `folder` (searched recursively)."""
  folder = os.fspath(folder)
  if not os.path.exists(folder):
    raise DataError(folder, 'input does not exist')
  if os.path.isfile(folder):
    return [folder]
  found = []
  for root, _, files in os.walk(folder):
    found.extend(os.path.join(root, f) for f in files if f.endswith('.skeleton'))
  if not found:
    raise DataError(folder, 'no .skeleton files found')
  return sorted(found, key=os.path.basename)


def read_ntu(source, *, max_persons: int = 2, max_frames: int = 300, num_joints: int = 25,
             workers: int = 1, on_error: str = 'stop', missing_list=None,
             gender_file=None, progress: bool = True,
             buffer: dict | None = None) -> SkeletonDataset:
  """Reads a folder (or list) of NTU `.skeleton` files into a validated dataset.

  Args:
    source: a folder (searched recursively), one file, or a sequence of file paths.
    max_persons: bodies kept per sample, chosen by most motion.
    max_frames: T of the output; longer files are cropped (counted in meta['cropped']).
    num_joints: joints each body must list (25 for Kinect v2).
    workers: parser processes.
    on_error: 'stop' raises the first DataError; 'skip' leaves the file out and records it in
      meta['skipped'] as `collect.Skipped(name, reason)`.
    missing_list: optional path of the official missing-skeletons list; listed samples are left
      out (meta['skipped'], reason 'in the missing-skeletons list').
    gender_file: optional per-performer gender list (a CSV of `P###,M|F` rows as the public
      NTU gender lists have; see `genders.read_gender_file`): the output then has `gender`,
      -1 for performers it does not list (meta['notes'] names them).
    progress: show a progress bar.
    buffer: keyword arguments for `collect.SampleBuffer` (`directory`, `threshold`).
  Returns:
    SkeletonDataset with action/subject 0-based (A-1, P-1), setup/camera/replication as in the
    names, layout 'ntu25' (or 'kinect_v1_20' for 20 joints), names without suffix, and the
    coordinates exactly as in the files (float32). Call `collect.release(ds)` when done with
    it: its coordinates may live in a memory-mapped temporary file.
  """
  files = (list_skeleton_files(source) if isinstance(source, (str, os.PathLike))
           else [os.fspath(f) for f in source])
  skipped = []
  if missing_list is not None:
    missing = read_missing_list(missing_list)
    skipped += [collect.Skipped(_stem(f), 'in the missing-skeletons list')
                for f in files if _stem(f) in missing]
    files = [f for f in files if _stem(f) not in missing]
  for f in files:
    fields = parse_sample_name(f)
    if 'performer' not in fields or 'action' not in fields:
      raise DataError(f, 'name does not follow NTU SsssCcccPpppRrrrAaaa (performer and action '
                      'are needed)')
  # Read before the (long) parse, so that a bad gender list fails at once.
  genders = read_gender_file(gender_file) if gender_file is not None else None
  load = functools.partial(load_sample, max_persons=max_persons, num_joints=num_joints)
  got = collect.gather(files, [_stem(f) for f in files], load, persons=max_persons,
                       frames=max_frames, joints=num_joints, workers=workers,
                       on_error=on_error, progress=progress, desc='parsing .skeleton',
                       buffer=buffer)
  try:
    skipped += got.skipped
    if not got.names:
      raise DataError(source if isinstance(source, (str, os.PathLike)) else None,
                      f'no readable sample ({len(skipped)} skipped)')
    x, lengths = got.buffer.arrays()
    ds = _dataset(x, lengths, got.names, got.infos, num_joints)
    notes = []
    if genders is not None:
      ds.gender, note = genders_of(ds.subject + 1, genders)
      notes += [note] if note else []
    ds.meta.update(source='ntu_raw', skipped=skipped, cropped=got.buffer.cropped,
                   buffer=got.buffer, notes=notes)
    return validate(ds, source if isinstance(source, (str, os.PathLike)) else None)
  except BaseException:
    got.buffer.close()
    raise


def _dataset(x, lengths, names: Sequence[str], fields: Iterable[dict],
             num_joints: int) -> SkeletonDataset:
  fields = list(fields)

  def column(key, offset=0):
    if not all(key in f for f in fields):
      return None
    return np.asarray([f[key] - offset for f in fields], np.int32)

  return SkeletonDataset(
      x=x, lengths=lengths, action=column('action', 1), subject=column('performer', 1),
      layout='ntu25' if num_joints == 25 else 'kinect_v1_20', names=np.asarray(names),
      camera=column('camera'), setup=column('setup'), replication=column('replication'))
