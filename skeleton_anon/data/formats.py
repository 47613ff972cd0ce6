"""Other toolkits' files: MS-G3D / 2s-AGCN `.npy` + label pickle (read, write), and what every
reader of a foreign format shares: the layout from a joint count, labels from sample names.

MS-G3D / 2s-AGCN / CTR-GCN keep float32 `(N, 3, T, V, M)` arrays next to a pickle of
`(sample_names, labels)`. Writing that pair lets anonymized data drop straight into their
PyTorch pipelines. (pyskl pickles: data/pyskl.py; OpenPose and MediaPipe folders: data/openpose.py,
data/mediapipe.py.)
Pickles are read with `safe_pickle` (no code runs); subject, camera, setup and replication come
from NTU- or ETRI-style sample names (`parse_sample_name`) or from a user's regular expression
(`NamePattern`). Names without a subject are an error: the generic file requires a subject for
every sample.
"""

from __future__ import annotations

import os
import pickle
import re
from typing import Sequence

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import SkeletonDataset, atomic_write, validate
from skeleton_anon.data.layouts import LAYOUTS
from skeleton_anon.data.ntu import parse_sample_name
from skeleton_anon.data.safe_pickle import safe_load
from skeleton_anon.errors import ConfigError, DataError, OutputExistsError

# These files name no layout, so the joint count and the dimensionality pick one where only one
# kind of source writes that count. 3D: the depth sensors (NTU's 25 joints, never openpose25;
# Kinect v1's 20) and MediaPipe's 33 world landmarks. 2D: the pose estimators (COCO-17 from
# HRNet / RTMPose / pyskl, OpenPose BODY_25, MediaPipe's 33). Other counts are not guessed (17
# in 3D could be h36m17 or a lifted coco17; 24 smpl24 or a skeleton of one's own): `--layout`.
_LAYOUT_BY_JOINTS = {
    3: {LAYOUTS[name].num_joints: name for name in ('ntu25', 'kinect_v1_20', 'mediapipe33')},
    2: {LAYOUTS[name].num_joints: name for name in ('coco17', 'openpose25', 'mediapipe33')},
}


def layout_for_joints(num_joints: int, path=None, *, channels: int = 3) -> str:
  """The registered layout with `num_joints` joints for 3D (channels=3: 25 -> ntu25, 20 ->
  kinect_v1_20, 33 -> mediapipe33) or 2D keypoints (channels=2: 17 -> coco17, 25 ->
  openpose25, 33 -> mediapipe33)."""
  known = _LAYOUT_BY_JOINTS[3 if channels == 3 else 2]
  if num_joints not in known:
    kind = '3D' if channels == 3 else '2D'
    same = [name for name, layout in LAYOUTS.items() if layout.num_joints == num_joints]
    if same:
      raise DataError(path, f'{num_joints} joints match no registered layout by count alone '
                      f'for {kind} keypoints (registered with {num_joints}: {", ".join(same)}); '
                      "name it with --layout, or convert to the generic .npz and set its "
                      "'layout'")
    raise DataError(path, f'{num_joints} joints match no registered layout '
                    f'({kind}: {sorted(known)}); convert to the generic .npz with your '
                    "own 'edges' instead")
  return known[num_joints]


def checked_layout(name: str | None, num_joints: int, channels: int, path=None) -> str:
  """`name` when its joint count is `num_joints` (else DataError), or the one the count picks."""
  if name is None:
    return layout_for_joints(num_joints, path, channels=channels)
  if name not in LAYOUTS:
    raise ConfigError(f'unknown layout {name!r}; registered: {", ".join(sorted(LAYOUTS))}')
  if LAYOUTS[name].num_joints != num_joints:
    raise DataError(path, f'layout {name!r} has {LAYOUTS[name].num_joints} joints, the '
                    f'keypoints have {num_joints}')
  return name


# Fields a --name_pattern may capture; subject is required. Numbers count from `base` (1: P001
# is subject 0, as NTU and ETRI names count).
PATTERN_FIELDS = ('subject', 'action', 'gender', 'camera', 'setup', 'replication')
_GENDER_WORDS = {'m': 1, 'male': 1, 'man': 1, '1': 1, 'f': 0, 'female': 0, 'woman': 0, '0': 0}


class NamePattern:
  """A user's regular expression for sample names, e.g. `P(?P<subject>\\d+)_A(?P<action>\\d+)`.

  Searched (re.search) in each sample's name (its path below the input folder, without the
  extension). Groups: `subject` (required), `action`, `gender` (M/F, male/female, 1/0),
  `camera`, `setup`, `replication`; numbers count from `base`.
  """

  def __init__(self, pattern: str, base: int = 1):
    try:
      self.regex = re.compile(pattern)
    except re.error as e:
      raise ConfigError(f'--name_pattern {pattern!r} is not a regular expression ({e})') from None
    if 'subject' not in self.regex.groupindex:
      raise ConfigError(f'--name_pattern {pattern!r} has no (?P<subject>...) group; the dataset '
                        'needs a subject per sample, e.g. --name_pattern='
                        "'P(?P<subject>\\d+)_A(?P<action>\\d+)'")
    self.pattern = pattern
    self.base = int(base)
    self.fields = [f for f in PATTERN_FIELDS if f in self.regex.groupindex]

  def matches(self, name: str) -> bool:
    return self.regex.search(name) is not None

  def parse(self, name: str, path=None, sample: int | None = None) -> dict[str, int]:
    """{field: value} for one name (0-based ids; gender 0/1); DataError naming it otherwise."""
    found = self.regex.search(name)
    if found is None:
      raise DataError(path, f'name does not match --name_pattern {self.pattern!r}',
                      sample=sample, name=name)
    out = {}
    for field in self.fields:
      text = found.group(field)
      if text is None:
        continue
      if field == 'gender':
        if text.lower() not in _GENDER_WORDS:
          raise DataError(path, f'gender {text!r} is none of M/F, male/female, 1/0',
                          sample=sample, name=name)
        out[field] = _GENDER_WORDS[text.lower()]
        continue
      if not text.isdigit():
        raise DataError(path, f'{field} {text!r} is not a number', sample=sample, name=name)
      value = int(text) - (self.base if field in ('subject', 'action') else 0)
      if value < 0:
        raise DataError(path, f'{field} {text} is below --name_base={self.base}', sample=sample,
                        name=name)
      out[field] = value
    if 'subject' not in out:
      raise DataError(path, 'the subject group matched nothing', sample=sample, name=name)
    return out

  def check_any(self, names: Sequence[str], path) -> None:
    """DataError when the pattern matches none of `names` (a pattern for other names)."""
    if names and not any(self.matches(n) for n in names):
      raise DataError(path, f'--name_pattern {self.pattern!r} matches none of the {len(names)} '
                      f'names (e.g. {names[0]!r})')


def fields_from_pattern(names: Sequence[str], pattern: NamePattern, path=None, *,
                        action: bool = True) -> dict[str, np.ndarray]:
  """subject (and action, gender, recording fields where every name has them) by `pattern`."""
  pattern.check_any(list(names), path)
  parsed = [pattern.parse(str(n), path, i) for i, n in enumerate(names)]
  out = {}
  for key in PATTERN_FIELDS:
    if key == 'action' and not action:
      continue
    if all(key in f for f in parsed):
      out[key] = np.asarray([f[key] for f in parsed], np.int32)
  return out


def check_labels(labels, n: int, path, what: str = 'labels') -> np.ndarray:
  """Integer labels, one per sample, none negative; DataError naming the first bad one."""
  try:
    arr = np.asarray(labels)
  except (ValueError, TypeError) as e:
    raise DataError(path, f'{what} are not an array of integers ({e})') from None
  if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or
                           (arr.dtype.kind == 'f' and np.all(arr == np.round(arr)))):
    raise DataError(path, f'{what} must be a flat list of integers, got {arr.dtype} '
                    f'{list(arr.shape)}')
  if len(arr) != n:
    raise DataError(path, f'{len(arr)} {what} for {n} samples')
  if (arr < 0).any():
    i = int(np.flatnonzero(arr < 0)[0])
    raise DataError(path, f'{what} = {arr[i]} is negative', sample=i)
  return arr.astype(np.int32)


def fields_from_names(names: Sequence[str], path=None) -> dict[str, np.ndarray]:
  """subject (P-1) and, when every name has them, camera/setup/replication from the names."""
  fields = [parse_sample_name(n) for n in names]
  for i, f in enumerate(fields):
    if 'performer' not in f:
      raise DataError(path, 'sample name carries no performer id (P###), but the dataset '
                      'needs a subject per sample; rename the samples NTU- or ETRI-style',
                      sample=i, name=str(names[i]))
  out = {'subject': np.asarray([f['performer'] - 1 for f in fields], np.int32)}
  for key in ('camera', 'setup', 'replication'):
    if all(key in f for f in fields):
      out[key] = np.asarray([f[key] for f in fields], np.int32)
  return out


def msg3d_label_path(npy_path) -> str:
  """The label pickle beside an MS-G3D array: <part>_data_joint.npy -> <part>_label.pkl."""
  npy_path = os.fspath(npy_path)
  match = re.fullmatch(r'(.*)_data(_\w+)?\.npy', os.path.basename(npy_path))
  if match is None:
    raise DataError(npy_path, 'cannot tell the label pickle from the file name (MS-G3D names '
                    'them <part>_data_joint.npy and <part>_label.pkl); give its path '
                    '(data.label_path)')
  return os.path.join(os.path.dirname(npy_path), f'{match[1]}_label.pkl')


def read_msg3d(npy_path, labels_path, *, mmap: bool = False) -> SkeletonDataset:
  """Reads an MS-G3D / 2s-AGCN `(N, 3, T, V, M)` .npy and its `(names, labels)` pickle.

  lengths are one past the last non-zero frame (2s-AGCN's normalisation repeats a sequence to
  fill T, so normalised files report T).
  """
  npy_path, labels_path = os.fspath(npy_path), os.fspath(labels_path)
  if not os.path.isfile(npy_path):
    raise DataError(npy_path, 'file does not exist')
  try:
    data = np.load(npy_path, mmap_mode='r', allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise DataError(npy_path, f'not a readable .npy array ({e})') from None
  if data.ndim != 5 or data.shape[1] not in (2, 3) or data.dtype.kind != 'f':
    raise DataError(npy_path, f'expected float (N, 3, T, V, M), got {data.dtype} '
                    f'{list(data.shape)}')
  if data.shape[1] != 3:
    raise DataError(npy_path, '2D keypoints (C=2) are not supported; 3D coordinates needed')
  n = data.shape[0]
  content = safe_load(labels_path)
  if not (isinstance(content, (tuple, list)) and len(content) == 2):
    raise DataError(labels_path, 'expected a (sample_names, labels) pair')
  names, labels = content
  names = [str(s.decode() if isinstance(s, bytes) else s) for s in names]
  if len(names) != n:
    raise DataError(labels_path, f'{len(names)} sample names for {n} samples in {npy_path}')
  action = check_labels(labels, n, labels_path)
  names = [n_[:-len('.skeleton')] if n_.endswith('.skeleton') else n_ for n_ in names]
  x = data.transpose(0, 4, 2, 3, 1)                                  # [N, M, T, V, 3]
  x = x if mmap and x.dtype == np.float32 else np.ascontiguousarray(x, dtype=np.float32)
  extra = fields_from_names(names, labels_path)
  ds = SkeletonDataset(
      x=x, lengths=np.maximum(collect.nonzero_length(x), 1), action=action,
      layout=layout_for_joints(x.shape[3], npy_path), names=np.asarray(names), **extra)
  ds.meta.update(source='msg3d', path=npy_path)
  return validate(ds, npy_path)


def _default_names(ds: SkeletonDataset) -> list[str]:
  """NTU-style names when the recording fields are known, else `P###_A###_<index>`."""
  if all(getattr(ds, k) is not None for k in ('setup', 'camera', 'replication')):
    return [f'S{s:03d}C{c:03d}P{p + 1:03d}R{r:03d}A{a + 1:03d}' for s, c, p, r, a in
            zip(ds.setup, ds.camera, ds.subject, ds.replication, ds.action)]
  return [f'P{p + 1:03d}_A{a + 1:03d}_{i:06d}' for i, (p, a) in
          enumerate(zip(ds.subject, ds.action))]


def write_msg3d(ds: SkeletonDataset, npy_path, labels_path, *, overwrite: bool = False,
                chunk: int = 1024) -> None:
  """Writes `ds` as a float32 `(N, 3, T, V, M)` .npy plus a `(names, labels)` pickle.

  Both files are written atomically; the array goes through a memory map chunk by chunk, so
  memory stays bounded. The pickle holds only a list of str and a list of int (readable by
  plain `pickle` in the PyTorch pipelines and by `read_msg3d`). Names default to ones that
  carry the performer and action, so a round trip keeps the subject.
  """
  ds = validate(ds, npy_path)
  for p in (npy_path, labels_path):
    if os.path.exists(p) and not overwrite:
      raise OutputExistsError(p)
  n, m, t, v, c = ds.x.shape
  names = [str(s) for s in ds.names] if ds.names is not None else _default_names(ds)

  def write_array(tmp):
    out = np.lib.format.open_memmap(tmp, mode='w+', dtype=np.float32, shape=(n, c, t, v, m))
    for start in range(0, n, chunk):
      out[start:start + chunk] = np.asarray(ds.x[start:start + chunk]).transpose(0, 4, 2, 3, 1)
    out.flush()
    del out

  def write_labels(tmp):
    with open(tmp, 'wb') as f:
      pickle.dump((names, [int(a) for a in ds.action]), f, protocol=4)

  atomic_write(npy_path, write_array, overwrite=overwrite, suffix='.npy')
  atomic_write(labels_path, write_labels, overwrite=overwrite)
