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
from skeleton_anon.data.dataset import SkeletonDataset, validate
from skeleton_anon.errors import DataError

VALUES_PER_JOINT = 12
VALUES_PER_BODY = 10

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


class _NotCanonical(Exception):
  """The fast reader declines a file; the exact reader then reads it or names its problem."""


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
  return _place(xyz, frame, slot, num_frames)


def _place(xyz: np.ndarray, frame, slot, num_frames: int) -> np.ndarray:
  """[B, T, V, 3] with block k's joints xyz[k] at (slot[k], frame[k]), zeros elsewhere."""
  out = np.zeros((int(np.max(slot)) + 1, num_frames) + xyz.shape[1:], np.float32)
  out[slot, frame] = xyz
  return out


# The fast reader. Line and space positions come from two scans of the bytes; with single spaces
# and none at a line's edge, a line holds (spaces inside it + 1) values. Whatever is not
# canonical raises _NotCanonical and takes the exact path, so results and errors are the exact
# reader's by construction.

_POW10 = np.array([float(10 ** k) for k in range(23)])   # each exactly representable
_WIDTH = 16                                              # bytes of the window per value
_DIGIT_WEIGHTS = _POW10[_WIDTH - 1::-1].copy()           # column c weighs 10**(15 - c)
# _KEEP[f]: a 16-byte mask keeping columns f..15, applied as two 64-bit words per value.
_KEEP = (np.arange(_WIDTH) >= np.arange(_WIDTH + 1)[:, None]).astype(np.uint8) * np.uint8(255)


def _windows(data: bytes) -> np.ndarray:
  """A view of `data` as overlapping 16-byte records, one starting at every byte."""
  return np.ndarray((len(data) - _WIDTH + 1,), dtype=f'V{_WIDTH}', buffer=data, strides=(1,))


def _right_aligned(data: bytes, start: np.ndarray, end: np.ndarray):
  """([N, 16] uint8, [N] first columns): each range's last 16 bytes, zeros before the range.

  Column c holds the byte at end - 16 + c; every later per-byte step is then one flat pass
  over N x 16 bytes. Ranges ending in the first 16 bytes are read from a zero-padded head.
  """
  first = np.clip(_WIDTH - (end - start), 0, _WIDTH)
  records = _windows(data)[np.maximum(end - _WIDTH, 0)]
  near = end < _WIDTH
  if near.any():
    records[near] = _windows(bytes(_WIDTH) + data[:_WIDTH])[end[near]]
  words = records.view(np.uint64).reshape(-1, 2)
  words &= _KEEP.view(f'V{_WIDTH}')[first, 0].view(np.uint64).reshape(-1, 2)
  return words.view(np.uint8), first


def _flagged(flags: np.ndarray) -> np.ndarray:
  """How many of each row's 16 bool bytes are set (each set byte is one bit)."""
  bits = np.bitwise_count(flags.view(np.uint64))
  return bits[:, 0] + bits[:, 1]


def _digits_value(digit: np.ndarray, is_digit: np.ndarray) -> np.ndarray:
  """float64 sum of the digits, column c weighing 10**(15 - c); exact below 2**53."""
  return (digit * is_digit).astype(np.float64) @ _DIGIT_WEIGHTS


def _counts(data: bytes, start: np.ndarray, end: np.ndarray) -> np.ndarray:
  """int64 values of ranges that must be plain digit strings (else _NotCanonical)."""
  chars, _ = _right_aligned(data, start, end)
  digit = chars - np.uint8(48)                                   # wraps for non-digits
  is_digit = digit < 10
  count = end - start
  if (count < 1).any() or (count > 15).any() or (_flagged(is_digit) != count).any():
    raise _NotCanonical                            # '+5', '2_5', ...: int() decides, slowly
  return _digits_value(digit, is_digit).astype(np.int64)


def _decimals(data: bytes, start: np.ndarray, end: np.ndarray) -> np.ndarray:
  """float64 values of the byte ranges [start, end), equal to `np.array(tokens, np.float64)`.

  A plain decimal (`-?digits[.digits]`, at most 14 digits) is the integer m of its digits over
  10**f (f digits after the point). m < 2**53 and 10**f are exact in float64, so the one
  division is correctly rounded: the value any correctly rounded parser gives. Other values
  (exponents, long ones, non-numbers) go through NumPy one by one, as in the exact reader.
  """
  count = end - start
  chars, first = _right_aligned(data, start, end)
  digit = chars - np.uint8(48)                                   # wraps for non-digits
  is_digit, is_point, is_minus = digit < 10, chars == 46, chars == 45
  num_digits, num_points, num_minus = _flagged(is_digit), _flagged(is_point), _flagged(is_minus)
  point = is_point.argmax(axis=1)
  plain = ((count <= _WIDTH) & (num_digits >= 1) & (num_digits <= 14)
           & (num_digits + num_points + num_minus == count) & (num_points <= 1) & (num_minus <= 1)
           & ((num_minus == 0) | (chars[np.arange(len(count)), first] == 45))
           & ((num_points == 0) | ((point < _WIDTH - 1) & (point > first + num_minus))))
  # The point's column adds a zero, so the digits before it carry one factor 10 too many:
  # whole = lead * 10**(f + 1) + below, and m = whole - 9 * lead * 10**f, all exact.
  whole = _digits_value(digit, is_digit)
  after = np.where(num_points == 1, _WIDTH - 1 - point, 0)
  scale = _POW10[after]
  lead = np.floor(whole / _POW10[after + 1]) * (num_points == 1)
  values = (whole - 9 * lead * scale) / scale
  values = np.where(num_minus == 1, -values, values)
  odd = np.flatnonzero(~plain)
  if odd.size:
    tokens = [data[s:e] for s, e in zip(start[odd].tolist(), end[odd].tolist())]
    try:
      values[odd] = np.array(tokens, dtype=np.float64)
    except ValueError:
      raise _NotCanonical from None
  return values


def _read_fast(data: bytes, num_joints: int) -> np.ndarray:
  """float32 [B, T, V, 3] of a canonical, valid file; _NotCanonical for anything else."""
  if (len(data) < 4 * _WIDTH or b'\t' in data or b'\x0b' in data or b'\x0c' in data
      or not num_joints):
    raise _NotCanonical
  arr = np.frombuffer(data, np.uint8)
  if b'\r' in data:
    cr = np.flatnonzero(arr == 13)
    if cr[-1] + 1 == arr.size or (arr[cr + 1] != 10).any():
      raise _NotCanonical                                        # a CR not ending a line
  newlines = np.flatnonzero(arr == 10)
  ends = newlines if data.endswith(b'\n') else np.append(newlines, arr.size)
  starts = np.concatenate(([0], ends[:-1] + 1))
  ends = ends - (arr[np.maximum(ends - 1, 0)] == 13)             # drop the CR of CRLF
  filled = np.flatnonzero(ends > starts)
  if not filled.size:
    raise _NotCanonical
  starts, ends = starts[:filled[-1] + 1], ends[:filled[-1] + 1]  # trailing blank lines dropped
  spaces = np.flatnonzero(arr == 32)
  if spaces.size and (spaces[0] == 0 or spaces[-1] == arr.size - 1
                      or (arr[spaces - 1] <= 32).any() or (arr[spaces + 1] <= 32).any()):
    raise _NotCanonical                            # a space at a line's edge or beside another
  first_space = np.searchsorted(spaces, starts)
  gaps = np.searchsorted(spaces, ends) - first_space             # values on the line - 1
  num_frames, frame, slot, joint_line = _walk_fast(data, starts, ends, gaps, num_joints)
  lines = (joint_line[:, None] + np.arange(num_joints)).ravel()
  if (gaps[lines] != VALUES_PER_JOINT - 1).any():
    raise _NotCanonical
  first = first_space[lines]
  token_start = np.stack([starts[lines], spaces[first] + 1, spaces[first + 1] + 1], axis=1)
  token_end = np.stack([spaces[first], spaces[first + 1], spaces[first + 2]], axis=1)
  with np.errstate(over='ignore'):   # an overflow goes to the exact reader
    xyz = _decimals(data, token_start.ravel(), token_end.ravel()).astype(np.float32)
  if not np.isfinite(xyz).all():
    raise _NotCanonical
  return _place(xyz.reshape(len(frame), num_joints, 3), frame, slot, num_frames)


def _walk_fast(data: bytes, starts, ends, gaps, num_joints: int):
  """The frame/body structure from whole-array checks: (T, frame, slot, first joint line).

  Count lines hold no space: one right after a body line (9 spaces) is a joint count, any other
  but line 0 a body count. The file is what the exact walk reads iff the body counts chain
  from line 1 to the last line, the body lines are exactly where they say and every joint
  count is num_joints (the joint lines' 11 spaces are checked by the caller).
  """
  count_line = np.flatnonzero(gaps == 0)
  body = np.flatnonzero(gaps == VALUES_PER_BODY - 1)
  if (not count_line.size or count_line[0] or not body.size or body[-1] + 1 == len(gaps)
      or ((gaps != 0) & (gaps != VALUES_PER_BODY - 1) & (gaps != VALUES_PER_JOINT - 1)).any()):
    raise _NotCanonical
  value = np.zeros(len(gaps), np.int64)
  value[count_line] = _counts(data, starts[count_line], ends[count_line])
  after_body = np.zeros(len(gaps), bool)
  after_body[body + 1] = True
  frame_line = count_line[1:][~after_body[count_line[1:]]]
  num_frames = int(value[0])
  if not num_frames or num_frames != len(frame_line) or frame_line[0] != 1:
    raise _NotCanonical
  bodies = value[frame_line]
  following = frame_line + 1 + bodies * (num_joints + 2)
  if (following[:-1] != frame_line[1:]).any() or following[-1] != len(gaps):
    raise _NotCanonical
  frame = np.repeat(np.arange(num_frames), bodies)
  slot = np.arange(len(frame)) - np.repeat(np.cumsum(bodies) - bodies, bodies)
  body_line = np.repeat(frame_line + 1, bodies) + slot * (num_joints + 2)
  if (len(body_line) != len(body) or (body_line != body).any()
      or (value[body + 1] != num_joints).any()):
    raise _NotCanonical
  return num_frames, frame, slot, body + 2


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
    return _read_fast(data, num_joints)
  except _NotCanonical:
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
             progress: bool = True, buffer: dict | None = None) -> SkeletonDataset:
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
    ds.meta.update(source='ntu_raw', skipped=skipped, cropped=got.buffer.cropped,
                   buffer=got.buffer)
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
