"""Other toolkits' files: MS-G3D / 2s-AGCN `.npy` + label pickle (read and write), pyskl pickles.

MS-G3D / 2s-AGCN / CTR-GCN keep float32 `(N, 3, T, V, M)` arrays next to a pickle of
`(sample_names, labels)`. Writing that pair lets anonymized data drop straight into their
PyTorch pipelines. pyskl / mmaction2 keep one pickle: `{"split": {...}, "annotations": [...]}`.
Pickles are read with `safe_pickle` (no code runs); subject, camera, setup and replication come
from NTU- or ETRI-style sample names (`parse_sample_name`). Names without a performer id
(`P###`) are an error: the generic file requires a subject for every sample.
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
from skeleton_anon.errors import DataError, OutputExistsError

# These files name no layout, so the joint count picks one, but only between the depth-sensor
# skeletons they carry (NTU's 25 joints, Kinect v1's 20): 25 joints are ntu25, never openpose25,
# and other counts are not guessed (17 could be coco17 or h36m17; a skeleton of one's own may
# have any count).
_LAYOUT_BY_JOINTS = {LAYOUTS[name].num_joints: name for name in ('ntu25', 'kinect_v1_20')}


def layout_for_joints(num_joints: int, path=None) -> str:
  """The registered layout with `num_joints` joints (25 -> ntu25, 20 -> kinect_v1_20)."""
  if num_joints not in _LAYOUT_BY_JOINTS:
    same = [name for name, layout in LAYOUTS.items() if layout.num_joints == num_joints]
    if same:
      raise DataError(path, f'{num_joints} joints match no registered layout by count alone '
                      f'(registered with {num_joints}: {", ".join(same)}); convert to the '
                      "generic .npz and set its 'layout'")
    raise DataError(path, f'{num_joints} joints match no registered layout '
                    f'({sorted(_LAYOUT_BY_JOINTS)}); convert to the generic .npz with your '
                    "own 'edges' instead")
  return _LAYOUT_BY_JOINTS[num_joints]


def _check_labels(labels, n: int, path, what: str = 'labels') -> np.ndarray:
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
  action = _check_labels(labels, n, labels_path)
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


def read_pyskl(path, *, split: str | None = None, max_persons: int = 2, max_frames: int = 300,
               buffer: dict | None = None) -> SkeletonDataset:
  """Reads a pyskl / mmaction2 3D annotation pickle.

  Args:
    path: the pickle: `{"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir",
      "total_frames", "label", "keypoint" [M, T, V, 3]}, ...]}`.
    split: e.g. 'xsub': samples in `xsub_train` get split 0, those in `xsub_val` (or
      `xsub_test`) split 1, the rest are left out (meta['skipped']). None: no split array.
    max_persons: persons kept (most motion first); max_frames: T of the output.
    buffer: keyword arguments for `collect.SampleBuffer`.
  """
  path = os.fspath(path)
  content = safe_load(path)
  if not isinstance(content, dict) or not isinstance(content.get('annotations'), list):
    raise DataError(path, "expected a dict with an 'annotations' list (pyskl format)")
  anns = content['annotations']
  if not anns:
    raise DataError(path, 'the annotations list is empty')
  side = _pyskl_split(content.get('split'), split, path)
  buf = collect.SampleBuffer(len(anns), max_persons, max_frames,
                             _num_joints(anns[0], path, 0), **(buffer or {}))
  try:
    names, labels, splits, skipped = [], [], [], []
    for i, ann in enumerate(anns):
      name = str(ann.get('frame_dir', '')) if isinstance(ann, dict) else ''
      if side is not None and name not in side:
        skipped.append(collect.Skipped(name or f'annotation {i}', f"in neither {split}_train "
                                       f'nor {split}_val'))
        continue
      kp = _keypoints(ann, path, i, buf.x.shape[3])
      total = int(ann.get('total_frames', kp.shape[1]))
      buf.add(collect.select_persons(kp, max_persons), min(total, kp.shape[1]))
      names.append(name)
      labels.append(ann.get('label'))
      if side is not None:
        splits.append(side[name])
    if not names:
      raise DataError(path, f'no annotation is in split {split!r}')
    x, lengths = buf.arrays()
    ds = SkeletonDataset(
        x=x, lengths=lengths, action=_check_labels(labels, len(names), path, 'label values'),
        layout=layout_for_joints(x.shape[3], path), names=np.asarray(names),
        split=None if side is None else np.asarray(splits, np.int8),
        **fields_from_names(names, path))
    ds.meta.update(source='pyskl', skipped=skipped, cropped=buf.cropped, buffer=buf)
    return validate(ds, path)
  except BaseException:
    buf.close()
    raise


def _pyskl_split(splits, name: str | None, path) -> dict[str, int] | None:
  if name is None:
    return None
  if not isinstance(splits, dict):
    raise DataError(path, f"split {name!r} asked for, but the pickle has no 'split' dict")
  train = splits.get(f'{name}_train')
  test = next((splits[k] for k in (f'{name}_val', f'{name}_test') if k in splits), None)
  if train is None or test is None:
    raise DataError(path, f'split {name!r} needs {name}_train and {name}_val lists; the pickle '
                    f'has {sorted(map(str, splits))}')
  side = {str(s): 0 for s in train}
  side.update({str(s): 1 for s in test})
  return side


def _num_joints(ann, path, i) -> int:
  kp = ann.get('keypoint') if isinstance(ann, dict) else None
  if not isinstance(kp, np.ndarray) or kp.ndim != 4:
    raise DataError(path, "annotation needs 'keypoint' as an array [M, T, V, C]", sample=i)
  return int(kp.shape[2])


def _keypoints(ann, path, i: int, num_joints: int) -> np.ndarray:
  """The annotation's keypoints as float32 [M, T, V, 3], checked."""
  name = str(ann.get('frame_dir')) if isinstance(ann, dict) else None
  if not isinstance(ann, dict) or 'label' not in ann:
    raise DataError(path, "annotation needs 'frame_dir', 'label' and 'keypoint'", sample=i,
                    name=name)
  kp = ann.get('keypoint')
  if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.dtype.kind not in 'fiu':
    raise DataError(path, "'keypoint' must be a numeric array [M, T, V, C]", sample=i,
                    name=name)
  if kp.shape[3] != 3:
    raise DataError(path, f'keypoint has C={kp.shape[3]}; only 3D (C=3) skeletons are '
                    'supported', sample=i, name=name)
  if kp.shape[2] != num_joints:
    raise DataError(path, f'{kp.shape[2]} joints, the first annotation has {num_joints}',
                    sample=i, name=name)
  kp = kp.astype(np.float32)
  if not np.isfinite(kp).all():
    raise DataError(path, 'keypoint contains NaN or inf', sample=i, name=name)
  if not kp.any():
    raise DataError(path, 'all coordinates are zero', sample=i, name=name)
  return kp
