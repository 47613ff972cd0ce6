"""pyskl / mmaction2 annotation pickles, read and written back.

pyskl keeps one pickle: `{"split": {...}, "annotations": [...]}` (2D HRNet COCO-17 keypoints with
`keypoint_score` and `img_shape`, or 3D Kinect skeletons). `read_pyskl` turns it into a
SkeletonDataset through the safe unpickler; `write_pyskl` writes anonymized samples back into a
copy of the input pickle (every other annotation field kept), which pyskl's loader reads
unchanged.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import SkeletonDataset, atomic_write, validate
from skeleton_anon.data.formats import (NamePattern, check_labels, checked_layout,
                                        fields_from_names, fields_from_pattern)
from skeleton_anon.data.safe_pickle import safe_load
from skeleton_anon.errors import DataError, OutputExistsError


PYSKL_EXTENSIONS = ('.pkl', '.pickle')


def is_pyskl_path(path) -> bool:
  """True for a pyskl annotation pickle's name (.pkl / .pickle), e.g. config.data.path."""
  return bool(path) and os.fspath(path).lower().endswith(PYSKL_EXTENSIONS)


def read_pyskl(path, *, split: str | None = None, max_persons: int = 2,
               max_frames: int | None = 300, buffer: dict | None = None,
               layout: str | None = None, name_pattern: NamePattern | None = None,
               clip_scores: bool = False) -> SkeletonDataset:
  """Reads a pyskl / mmaction2 annotation pickle, 3D or 2D (pyskl's HRNet COCO-17 files).

  Args:
    path: the pickle: `{"split": {name: [frame_dir, ...]}, "annotations": [{"frame_dir",
      "total_frames", "label", "keypoint" [M, T, V, C], optional "keypoint_score" [M, T, V],
      "img_shape" (h, w)}, ...]}` with C = 3 or 2; a bare list of annotations (what pyskl's
      custom_2d_skeleton.py writes) is read too.
    split: e.g. 'xsub': samples in `xsub_train` get split 0, those in `xsub_val` (or
      `xsub_test`) split 1, the rest are left out (meta['skipped']). None: no split array.
    max_persons: persons kept (most motion first; scores follow their person); max_frames: T of
      the output, None for the longest annotation.
    buffer: keyword arguments for `collect.SampleBuffer`.
    layout: a registered layout name; None picks it from the joint count (`layout_for_joints`).
    name_pattern: subject (and recording fields) from frame_dir by this pattern instead of
      NTU/ETRI-style names; the action is always the annotation's label.
    clip_scores: clip keypoint scores into [0, 1] instead of refusing them (some estimators'
      heatmap maxima exceed 1 a little).

  The dataset's score is `keypoint_score` (None when the annotations have none), img_shape the
  annotations' (None unless every one has it); meta: source 'pyskl', path, skipped, cropped.
  """
  path = os.fspath(path)
  content = safe_load(path)
  anns = content.get('annotations') if isinstance(content, dict) else content
  if not isinstance(anns, list) or (not isinstance(content, dict) and
                                    not all(isinstance(a, dict) for a in anns)):
    raise DataError(path, "expected a dict with an 'annotations' list, or a list of "
                    'annotation dicts (pyskl format)')
  if not anns:
    raise DataError(path, 'the annotations list is empty')
  side = _pyskl_split(content.get('split') if isinstance(content, dict) else None, split, path)
  joints, channels = _shape_of_first(anns[0], path)
  with_score = isinstance(anns[0], dict) and anns[0].get('keypoint_score') is not None
  layout = checked_layout(layout, joints, channels, path)
  chosen = []
  skipped = []
  for i, ann in enumerate(anns):
    name = str(ann.get('frame_dir', '')) if isinstance(ann, dict) else ''
    if side is not None and name not in side:
      skipped.append(collect.Skipped(name or f'annotation {i}', f"in neither {split}_train "
                                     f'nor {split}_val'))
      continue
    chosen.append(i)
  if not chosen:
    raise DataError(path, f'no annotation is in split {split!r}')
  if max_frames is None:
    max_frames = max(_frames_of(anns[i], path, i) for i in chosen)
  buf = collect.SampleBuffer(len(chosen), max_persons, max_frames, joints, channels=channels,
                             scores=with_score, **(buffer or {}))
  try:
    names, labels, splits, shapes = [], [], [], []
    for i in chosen:
      ann = anns[i]
      kp = _keypoints(ann, path, i, joints, channels)
      score = _keypoint_score(ann, kp, path, i, with_score, clip_scores)
      total = int(ann.get('total_frames', kp.shape[1]))
      order = collect.person_order(kp, max_persons)
      buf.add(kp[order], min(total, kp.shape[1]), None if score is None else score[order])
      name = str(ann.get('frame_dir'))
      names.append(name)
      labels.append(ann.get('label'))
      shapes.append(_img_shape(ann, path, i))
      if side is not None:
        splits.append(side[name])
    x, lengths = buf.arrays()
    if name_pattern is not None:
      fields = fields_from_pattern(names, name_pattern, path, action=False)
    else:
      fields = fields_from_names(names, path)
    ds = SkeletonDataset(
        x=x, lengths=np.maximum(lengths, 1),
        action=check_labels(labels, len(names), path, 'label values'),
        layout=layout, names=np.asarray(names),
        split=None if side is None else np.asarray(splits, np.int8), score=buf.scores(),
        img_shape=(None if any(s is None for s in shapes) else np.asarray(shapes, np.int32)),
        **fields)
    ds.meta.update(source='pyskl', path=path, skipped=skipped, cropped=buf.cropped, buffer=buf)
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


def _shape_of_first(ann, path) -> tuple[int, int]:
  """(joints, channels) of the first annotation's keypoints."""
  kp = ann.get('keypoint') if isinstance(ann, dict) else None
  if not isinstance(kp, np.ndarray) or kp.ndim != 4:
    raise DataError(path, "annotation needs 'keypoint' as an array [M, T, V, C] (compressed "
                    'pyskl annotations with frame_inds are not supported)', sample=0)
  if kp.shape[3] not in (2, 3):
    raise DataError(path, f'keypoint has C={kp.shape[3]}; 3D (C=3) or 2D (C=2) keypoints are '
                    'supported (scores belong in keypoint_score)', sample=0,
                    name=str(ann.get('frame_dir')))
  return int(kp.shape[2]), int(kp.shape[3])


def _frames_of(ann, path, i) -> int:
  kp = ann.get('keypoint') if isinstance(ann, dict) else None
  if not isinstance(kp, np.ndarray) or kp.ndim != 4:
    raise DataError(path, "'keypoint' must be a numeric array [M, T, V, C]", sample=i)
  return max(1, min(int(ann.get('total_frames', kp.shape[1])), kp.shape[1]))


def _keypoints(ann, path, i: int, num_joints: int, channels: int) -> np.ndarray:
  """The annotation's keypoints as float32 [M, T, V, C], checked."""
  name = str(ann.get('frame_dir')) if isinstance(ann, dict) else None
  if not isinstance(ann, dict) or 'label' not in ann or 'frame_dir' not in ann:
    raise DataError(path, "annotation needs 'frame_dir', 'label' and 'keypoint'", sample=i,
                    name=name)
  kp = ann.get('keypoint')
  if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.dtype.kind not in 'fiu':
    raise DataError(path, "'keypoint' must be a numeric array [M, T, V, C]", sample=i,
                    name=name)
  if kp.shape[3] != channels:
    raise DataError(path, f'keypoint has C={kp.shape[3]}, the first annotation C={channels}',
                    sample=i, name=name)
  if kp.shape[2] != num_joints:
    raise DataError(path, f'{kp.shape[2]} joints, the first annotation has {num_joints}',
                    sample=i, name=name)
  kp = kp.astype(np.float32)
  if not np.isfinite(kp).all():
    raise DataError(path, 'keypoint contains NaN or inf', sample=i, name=name)
  if not kp.any():
    raise DataError(path, 'all coordinates are zero', sample=i, name=name)
  return kp


def _keypoint_score(ann, kp, path, i: int, expected: bool, clip: bool):
  """keypoint_score as float32 [M, T, V] (None when the annotations have none), checked."""
  name = str(ann.get('frame_dir'))
  score = ann.get('keypoint_score')
  if not expected:
    if score is not None:
      raise DataError(path, 'has keypoint_score, the first annotation has none', sample=i,
                      name=name)
    return None
  if score is None:
    raise DataError(path, 'has no keypoint_score, the first annotation has one', sample=i,
                    name=name)
  if not isinstance(score, np.ndarray) or score.dtype.kind not in 'fiu':
    raise DataError(path, 'keypoint_score must be a numeric array [M, T, V]', sample=i,
                    name=name)
  if score.shape != kp.shape[:3]:
    raise DataError(path, f'keypoint {list(kp.shape)} and keypoint_score '
                    f'{list(score.shape)} have different shapes (expected '
                    f'{list(kp.shape[:3])})', sample=i, name=name)
  score = score.astype(np.float32)
  if not np.isfinite(score).all():
    raise DataError(path, 'keypoint_score contains NaN or inf', sample=i, name=name)
  if clip:
    return np.clip(score, 0.0, 1.0)
  outside = (score < 0) | (score > 1)
  if outside.any():
    raise DataError(path, f'keypoint_score = {score[outside][0]:g} is outside [0, 1] (pass '
                    '--clip_scores to clip)', sample=i, name=name)
  return score


def _img_shape(ann, path, i: int) -> tuple[int, int] | None:
  shape = ann.get('img_shape')
  if shape is None:
    return None
  try:
    h, w = (int(v) for v in shape)
  except (TypeError, ValueError):
    raise DataError(path, f'img_shape must be (height, width), got {shape!r}', sample=i,
                    name=str(ann.get('frame_dir'))) from None
  if h < 1 or w < 1:
    raise DataError(path, f'img_shape {(h, w)} is not a positive (height, width)', sample=i,
                    name=str(ann.get('frame_dir')))
  return h, w


def write_pyskl(ds: SkeletonDataset, template, output, *, offset: np.ndarray | None = None,
                scale: np.ndarray | None = None, overwrite: bool = False) -> int:
  """Writes `ds` (e.g. anonymized) as a pyskl pickle shaped like `template`, the pickle it
  was read from; returns the number of annotations written.

  The template is re-read with the safe unpickler. Each sample (matched by name = frame_dir)
  becomes a copy of its annotation with only `keypoint` (float32 [M, T, V, C]: the persons up
  to the last one present, the sample's `lengths` frames, mapped back to the template's frame by
  `offset`/`scale` [N, C] when given, see `preprocess.denormalize_2d`), `keypoint_score`
  (float32 [M, T, V], from ds.score) and `total_frames` replaced; label, img_shape,
  original_shape and every other field are kept. Annotations and split lists keep the
  template's order, restricted to the written samples; other top-level keys are kept. The
  file is written atomically with pickle protocol 4 (what pyskl's mmcv.load reads).
  """
  from skeleton_anon.data import preprocess  # pylint: disable=g-import-not-at-top
  template, output = os.fspath(template), os.fspath(output)
  if os.path.exists(output) and not overwrite:
    raise OutputExistsError(output)
  if ds.names is None:
    raise DataError(template, 'the dataset has no names; pyskl annotations are matched by '
                    'frame_dir')
  content = safe_load(template)
  anns = content.get('annotations') if isinstance(content, dict) else content
  if not isinstance(anns, list):
    raise DataError(template, "expected a dict with an 'annotations' list (pyskl format)")
  position = {str(a.get('frame_dir')): k for k, a in enumerate(anns) if isinstance(a, dict)}
  written = {}
  for i, name in enumerate(map(str, ds.names)):
    if name not in position:
      raise DataError(template, 'sample is not an annotation of the template pickle', sample=i,
                      name=name)
    length = int(ds.lengths[i])
    x = np.asarray(ds.x[i, :, :length], np.float32)                    # [M, L, V, C]
    present = np.flatnonzero((x != 0).reshape(x.shape[0], -1).any(axis=1))
    persons = int(present[-1]) + 1 if present.size else 1
    x = x[:persons]
    if offset is not None:
      x = preprocess.denormalize_2d(x[None], offset[i:i + 1], scale[i:i + 1])[0]
    ann = dict(anns[position[name]])
    ann['keypoint'] = np.ascontiguousarray(x, np.float32)
    if ds.score is not None:
      ann['keypoint_score'] = np.ascontiguousarray(ds.score[i, :persons, :length], np.float32)
    else:
      ann.pop('keypoint_score', None)
    ann['total_frames'] = length
    written[position[name]] = ann
  out_anns = [written[k] for k in sorted(written)]
  if isinstance(content, dict):
    out = dict(content)
    out['annotations'] = out_anns
    if isinstance(content.get('split'), dict):
      names = {str(a['frame_dir']) for a in out_anns}
      out['split'] = {k: [s for s in v if str(s) in names]
                      for k, v in content['split'].items()}
  else:
    out = out_anns

  def write(tmp):
    with open(tmp, 'wb') as f:
      pickle.dump(out, f, protocol=4)

  atomic_write(output, write, overwrite=overwrite)
  return len(out_anns)
