"""The fast path of the NTU `.skeleton` reader: vectorised NumPy passes over a file's bytes.

It accepts only canonical files (LF/CRLF lines, single spaces between values) and declines
anything else with `NotCanonical`, so `ntu.read_skeleton` falls back to the exact line-by-line
reader, which reads the file or names its problem. Results are bit-identical by construction.
"""

from __future__ import annotations

import numpy as np

VALUES_PER_JOINT = 12
VALUES_PER_BODY = 10

class NotCanonical(Exception):
  """The fast reader declines a file; the exact reader then reads it or names its problem."""


def place_bodies(xyz: np.ndarray, frame, slot, num_frames: int) -> np.ndarray:
  """[B, T, V, 3] with block k's joints xyz[k] at (slot[k], frame[k]), zeros elsewhere."""
  out = np.zeros((int(np.max(slot)) + 1, num_frames) + xyz.shape[1:], np.float32)
  out[slot, frame] = xyz
  return out


# The fast reader. Line and space positions come from two scans of the bytes; with single spaces
# and none at a line's edge, a line holds (spaces inside it + 1) values. Whatever is not
# canonical raises NotCanonical and takes the exact path, so results and errors are the exact
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
  """int64 values of ranges that must be plain digit strings (else NotCanonical)."""
  chars, _ = _right_aligned(data, start, end)
  digit = chars - np.uint8(48)                                   # wraps for non-digits
  is_digit = digit < 10
  count = end - start
  if (count < 1).any() or (count > 15).any() or (_flagged(is_digit) != count).any():
    raise NotCanonical                            # '+5', '2_5', ...: int() decides, slowly
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
      raise NotCanonical from None
  return values


def read_fast(data: bytes, num_joints: int) -> np.ndarray:
  """float32 [B, T, V, 3] of a canonical, valid file; NotCanonical for anything else."""
  if (len(data) < 4 * _WIDTH or b'\t' in data or b'\x0b' in data or b'\x0c' in data
      or not num_joints):
    raise NotCanonical
  arr = np.frombuffer(data, np.uint8)
  if b'\r' in data:
    cr = np.flatnonzero(arr == 13)
    if cr[-1] + 1 == arr.size or (arr[cr + 1] != 10).any():
      raise NotCanonical                                        # a CR not ending a line
  newlines = np.flatnonzero(arr == 10)
  ends = newlines if data.endswith(b'\n') else np.append(newlines, arr.size)
  starts = np.concatenate(([0], ends[:-1] + 1))
  ends = ends - (arr[np.maximum(ends - 1, 0)] == 13)             # drop the CR of CRLF
  filled = np.flatnonzero(ends > starts)
  if not filled.size:
    raise NotCanonical
  starts, ends = starts[:filled[-1] + 1], ends[:filled[-1] + 1]  # trailing blank lines dropped
  spaces = np.flatnonzero(arr == 32)
  if spaces.size and (spaces[0] == 0 or spaces[-1] == arr.size - 1
                      or (arr[spaces - 1] <= 32).any() or (arr[spaces + 1] <= 32).any()):
    raise NotCanonical                            # a space at a line's edge or beside another
  first_space = np.searchsorted(spaces, starts)
  gaps = np.searchsorted(spaces, ends) - first_space             # values on the line - 1
  num_frames, frame, slot, joint_line = _walk_fast(data, starts, ends, gaps, num_joints)
  lines = (joint_line[:, None] + np.arange(num_joints)).ravel()
  if (gaps[lines] != VALUES_PER_JOINT - 1).any():
    raise NotCanonical
  first = first_space[lines]
  token_start = np.stack([starts[lines], spaces[first] + 1, spaces[first + 1] + 1], axis=1)
  token_end = np.stack([spaces[first], spaces[first + 1], spaces[first + 2]], axis=1)
  with np.errstate(over='ignore'):   # an overflow goes to the exact reader
    xyz = _decimals(data, token_start.ravel(), token_end.ravel()).astype(np.float32)
  if not np.isfinite(xyz).all():
    raise NotCanonical
  return place_bodies(xyz.reshape(len(frame), num_joints, 3), frame, slot, num_frames)


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
    raise NotCanonical
  value = np.zeros(len(gaps), np.int64)
  value[count_line] = _counts(data, starts[count_line], ends[count_line])
  after_body = np.zeros(len(gaps), bool)
  after_body[body + 1] = True
  frame_line = count_line[1:][~after_body[count_line[1:]]]
  num_frames = int(value[0])
  if not num_frames or num_frames != len(frame_line) or frame_line[0] != 1:
    raise NotCanonical
  bodies = value[frame_line]
  following = frame_line + 1 + bodies * (num_joints + 2)
  if (following[:-1] != frame_line[1:]).any() or following[-1] != len(gaps):
    raise NotCanonical
  frame = np.repeat(np.arange(num_frames), bodies)
  slot = np.arange(len(frame)) - np.repeat(np.cumsum(bodies) - bodies, bodies)
  body_line = np.repeat(frame_line + 1, bodies) + slot * (num_joints + 2)
  if (len(body_line) != len(body) or (body_line != body).any()
      or (value[body + 1] != num_joints).any()):
    raise NotCanonical
  return num_frames, frame, slot, body + 2
