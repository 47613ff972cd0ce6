r"""Converts a skeleton dataset in any supported format into the generic `.npz` (DESIGN sec. 2).

  python -m skeleton_anon.prepare --source=ntu_raw --input=nturgb+d_skeletons/ \
      --missing_list=NTU_RGBD_samples_with_missing_skeletons.txt --output=ntu60.npz
  python -m skeleton_anon.prepare --source=etri_csv --input=etri/ --output=etri.npz
  python -m skeleton_anon.prepare --source=msg3d --input=train_data_joint.npy,val_data_joint.npy \
      --labels=train_label.pkl,val_label.pkl --output=ntu_xview.npz --normalize=none
  python -m skeleton_anon.prepare --source=pyskl --input=ntu60_3danno.pkl --pyskl_split=xsub \
      --output=ntu60_xsub.npz
  python -m skeleton_anon.prepare --source=pyskl --input=ntu60_hrnet.pkl --pyskl_split=xsub \
      --output=ntu60_2d_xsub.npz                    # 2D COCO-17 with scores, normalize=image
  python -m skeleton_anon.prepare --source=openpose --input=openpose_json/ \
      --name_pattern='P(?P<subject>\d+)_A(?P<action>\d+)' --output=mine.npz
  python -m skeleton_anon.prepare --source=mediapipe --input=landmarks/ \
      --name_pattern='(?P<subject>\d+)/(?P<action>\d+)' --output=mine.npz
  python -m skeleton_anon.prepare --source=synthetic --num_subjects=40 --output=synthetic.npz

Every error reaches the user as one line (`error: <file>: <sample>: <problem>`), exit status 1.
With --on_error=skip, unreadable files are left out and listed with their reason instead.
For msg3d, two comma-separated inputs (and label files) become the train (0) and test (1)
split. --split=RULE stores a split computed by `splits.make_split` (see skeleton_anon/data/
splits.py); without it the file keeps the source's own split, if any.
--normalize=auto (default) is 'agcn' for 3D coordinates and, for 2D keypoints, 'image' when the
image size is known (pyskl's img_shape, or --img_shape=H,W) and 'skeleton' otherwise; an npz
that records its normalisation is kept as it is.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Sequence

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import RECORDING_KEYS, SkeletonDataset, load_npz, save_npz
from skeleton_anon.errors import ConfigError, DataError, OutputExistsError, SkeletonAnonError

SOURCES = ('ntu_raw', 'etri_csv', 'msg3d', 'pyskl', 'openpose', 'mediapipe', 'npz', 'synthetic')
# 'auto' and preprocess.METHODS: 3D 'agcn', 'pyskl'; 2D 'image', 'skeleton'.
NORMALIZE = ('auto', 'none', 'agcn', 'pyskl', 'image', 'skeleton')
# Sources whose sample names, layout and scores the name/layout options apply to.
_KEYPOINT_SOURCES = ('pyskl', 'openpose', 'mediapipe')
_CHUNK = 1024  # samples normalised at once: bounds temporary memory for memory-mapped data


@dataclasses.dataclass
class PrepareOptions:
  """Everything `prepare` needs; the command-line flags map onto these one to one."""
  source: str
  output: str
  input: str | None = None
  normalize: str = 'auto'
  max_frames: int = 300
  max_persons: int | None = None     # None: 2, or 1 for etri_csv without --keep_multi_person
  workers: int = 1
  on_error: str = 'stop'
  overwrite: bool = False
  labels: str | None = None
  missing_list: str | None = None
  gender_file: str | None = None
  keep_multi_person: bool = False
  pyskl_split: str | None = None
  split: str | None = None
  split_seed: int = 0
  test_fraction: float = 0.2
  num_subjects: int = 20
  num_actions: int = 10
  repetitions: int = 2
  seed: int = 0
  compress: bool = False
  progress: bool = True
  memmap_threshold: int | None = None
  # A custom skeleton's normalisation joints 'center,bottom,top,right,left' (0-based): centre on
  # `center`, rotate bottom->top onto +z and the right->left shoulders onto +x. Without them a
  # custom layout is only centred (on its root).
  norm_joints: str | None = None
  # pyskl / openpose / mediapipe: a registered layout instead of the one the joint count picks;
  # a regular expression for subject (required), action, gender, ... in the sample names, and
  # where its numbers start; the frames' (height, width) when the files do not say; scores
  # clipped into [0, 1] instead of refused; mediapipe: 2D (x, y) or 3D (x, y, z) keypoints.
  layout: str | None = None
  name_pattern: str | None = None
  name_base: int = 1
  img_shape: str | None = None
  clip_scores: bool = False
  keypoint_dims: int = 2


def _check_options(opt: PrepareOptions) -> None:
  if opt.source not in SOURCES:
    raise ConfigError(f'unknown --source {opt.source!r}; use one of {list(SOURCES)}')
  if opt.normalize not in NORMALIZE:
    raise ConfigError(f'unknown --normalize {opt.normalize!r}; use one of {list(NORMALIZE)}')
  if opt.on_error not in ('stop', 'skip'):
    raise ConfigError(f"--on_error must be 'stop' or 'skip', got {opt.on_error!r}")
  if opt.max_frames < 1 or (opt.max_persons is not None and opt.max_persons < 1):
    raise ConfigError('--max_frames and --max_persons must be >= 1')
  if not opt.output:
    raise ConfigError('--output is required')
  for flag in ('layout', 'name_pattern', 'img_shape'):
    if getattr(opt, flag) is not None and opt.source not in _KEYPOINT_SOURCES:
      raise ConfigError(f'--{flag} is for --source={"|".join(_KEYPOINT_SOURCES)}, not '
                        f'{opt.source}')
  if opt.layout is not None:
    from skeleton_anon.data.layouts import LAYOUTS  # pylint: disable=g-import-not-at-top
    if opt.layout not in LAYOUTS:
      raise ConfigError(f'unknown --layout {opt.layout!r}; registered: '
                        f'{", ".join(sorted(LAYOUTS))}')
  _name_pattern(opt)
  _img_shape(opt)
  if opt.source != 'synthetic':
    if not opt.input:
      raise ConfigError(f'--input is required for --source={opt.source}')
    for path in opt.input.split(','):
      if not os.path.exists(path):
        raise DataError(path, 'input does not exist')
      if os.path.abspath(path) == os.path.abspath(opt.output):
        raise ConfigError(f'{opt.output}: --output must differ from --input')
  if opt.source == 'msg3d':
    if not opt.labels:
      raise ConfigError('--source=msg3d needs --labels=LABELS.pkl (the (names, labels) pickle)')
    if len(opt.labels.split(',')) != len(opt.input.split(',')) or \
        len(opt.input.split(',')) > 2:
      raise ConfigError('--source=msg3d takes one or two (train,test) --input files and as '
                        'many --labels files')
  if os.path.exists(opt.output) and not opt.overwrite:
    raise OutputExistsError(opt.output)


def _name_pattern(opt: PrepareOptions):
  if opt.name_pattern is None:
    return None
  from skeleton_anon.data.formats import NamePattern  # pylint: disable=g-import-not-at-top
  return NamePattern(opt.name_pattern, base=opt.name_base)


def _img_shape(opt: PrepareOptions) -> tuple[int, int] | None:
  if opt.img_shape is None:
    return None
  try:
    h, w = (int(v) for v in opt.img_shape.split(','))
  except ValueError:
    h = w = 0
  if h < 1 or w < 1:
    raise ConfigError(f'--img_shape must be HEIGHT,WIDTH in pixels (e.g. 1080,1920), got '
                      f'{opt.img_shape!r}')
  return h, w


def _read(opt: PrepareOptions) -> SkeletonDataset:
  persons = opt.max_persons or (1 if opt.source == 'etri_csv' and not opt.keep_multi_person
                                else 2)
  buffer = {'directory': os.path.dirname(os.path.abspath(opt.output)),
            'threshold': opt.memmap_threshold}
  common = dict(max_persons=persons, max_frames=opt.max_frames)
  parallel = dict(workers=opt.workers, on_error=opt.on_error, progress=opt.progress,
                  buffer=buffer)
  if opt.source == 'ntu_raw':
    from skeleton_anon.data import ntu  # pylint: disable=g-import-not-at-top
    return ntu.read_ntu(opt.input, missing_list=opt.missing_list, gender_file=opt.gender_file,
                        **common, **parallel)
  if opt.source == 'etri_csv':
    from skeleton_anon.data import etri  # pylint: disable=g-import-not-at-top
    return etri.read_etri(opt.input, gender_file=opt.gender_file,
                          keep_multi_person=opt.keep_multi_person, **common, **parallel)
  if opt.source == 'pyskl':
    from skeleton_anon.data import pyskl  # pylint: disable=g-import-not-at-top
    ds = pyskl.read_pyskl(opt.input, split=opt.pyskl_split, buffer=buffer, layout=opt.layout,
                          name_pattern=_name_pattern(opt), clip_scores=opt.clip_scores,
                          **common)
    size = _img_shape(opt)
    if size is not None and ds.img_shape is None:
      ds.img_shape = np.tile(np.int32(size), (ds.num_samples, 1))
    elif size is not None:
      ds.meta.setdefault('notes', []).append('--img_shape ignored: the annotations carry '
                                              'their own img_shape')
    return ds
  if opt.source in ('openpose', 'mediapipe'):
    from skeleton_anon.data import mediapipe, openpose  # pylint: disable=g-import-not-at-top
    folder = dict(name_pattern=_name_pattern(opt), layout=opt.layout, img_shape=_img_shape(opt),
                  max_frames=opt.max_frames, **parallel)
    if opt.source == 'openpose':
      return openpose.read_openpose(opt.input, max_persons=persons, **folder)
    return mediapipe.read_mediapipe(opt.input, keypoint_dims=opt.keypoint_dims, **folder)
  if opt.source == 'msg3d':
    return _read_msg3d(opt.input.split(','), opt.labels.split(','))
  if opt.source == 'npz':
    return load_npz(opt.input)
  from skeleton_anon.data import synthetic  # pylint: disable=g-import-not-at-top
  ds = synthetic.make_synthetic(num_subjects=opt.num_subjects, num_actions=opt.num_actions,
                                repetitions=opt.repetitions, seed=opt.seed,
                                num_frames=opt.max_frames, num_persons=persons)
  # The generator reports recording conditions in meta; the file stores them as arrays.
  for key in RECORDING_KEYS:
    if getattr(ds, key) is None and ds.meta.get(key) is not None:
      setattr(ds, key, np.asarray(ds.meta[key], np.int32))
  return ds


def _read_msg3d(inputs: Sequence[str], labels: Sequence[str]) -> SkeletonDataset:
  from skeleton_anon.data import formats  # pylint: disable=g-import-not-at-top
  parts = [formats.read_msg3d(npy, pkl) for npy, pkl in zip(inputs, labels)]
  if len(parts) == 1:
    return parts[0]
  a, b = parts
  if a.x.shape[1:] != b.x.shape[1:]:
    raise DataError(inputs[1], f'shape {list(b.x.shape[1:])} per sample differs from '
                    f'{inputs[0]} ({list(a.x.shape[1:])})')

  def cat(key):
    va, vb = getattr(a, key), getattr(b, key)
    return None if va is None or vb is None else np.concatenate([va, vb])

  return SkeletonDataset(
      x=np.concatenate([a.x, b.x]), lengths=cat('lengths'), action=cat('action'),
      subject=cat('subject'), layout=a.layout, names=cat('names'), camera=cat('camera'),
      setup=cat('setup'), replication=cat('replication'),
      split=np.repeat(np.int8([0, 1]), [a.num_samples, b.num_samples]),
      meta={'source': 'msg3d', 'path': ','.join(inputs)})


def _normalisation_layout(ds: SkeletonDataset, opt: PrepareOptions):
  """The dataset's layout, with --norm_joints' roles for a custom skeleton."""
  layout = ds.get_layout()
  if opt.norm_joints is None:
    return layout
  if layout.name != 'custom':
    raise ConfigError(f'--norm_joints is for custom layouts; {layout.name!r} has its own')
  try:
    joints = [int(j) for j in opt.norm_joints.split(',')]
  except ValueError:
    joints = []
  if len(joints) != 5 or min(joints) < 0 or max(joints) >= layout.num_joints:
    raise ConfigError(f'--norm_joints must be 5 joint indices center,bottom,top,right,left in '
                      f'0..{layout.num_joints - 1}, got {opt.norm_joints!r}')
  center, bottom, top, right, left = joints
  return dataclasses.replace(layout, norm_center=center, norm_zaxis=(bottom, top),
                             norm_xaxis=(right, left))


def resolved_method(ds: SkeletonDataset, method: str) -> str:
  """'auto' -> 'none' for a file that says it is normalised already (an npz's 'normalize'),
  else 'agcn' (3D), 'image' (2D with img_shape) or 'skeleton' (2D); others as given."""
  from skeleton_anon.data import preprocess  # pylint: disable=g-import-not-at-top
  if method == 'auto':
    if ds.meta.get('normalize') not in (None, 'none'):
      return 'none'
    return preprocess.default_method(ds.num_channels, ds.img_shape is not None)
  return method


def _fit_frames_and_normalize(ds: SkeletonDataset, opt: PrepareOptions) -> SkeletonDataset:
  """Pads/crops to --max_frames, then normalises chunk by chunk, in place where possible."""
  from skeleton_anon.data import preprocess  # pylint: disable=g-import-not-at-top
  method = resolved_method(ds, opt.normalize)
  preprocess.check_method(method, ds.num_channels)
  x, lengths, score = ds.x, np.array(ds.lengths, np.int32), ds.score
  if x.shape[2] != opt.max_frames:
    ds.meta['cropped'] = ds.meta.get('cropped', 0) + int((lengths > opt.max_frames).sum())
    if score is not None:
      # The scores follow their keypoints frame for frame (as one more channel).
      score = preprocess.pad_or_crop(np.asarray(score)[..., None], lengths, opt.max_frames)[0]
      score = score[..., 0]
    x, lengths = preprocess.pad_or_crop(x, lengths, opt.max_frames)
  if method != 'none':
    if not (isinstance(x, np.ndarray) and x.flags.writeable):
      x = np.array(x, np.float32)
    if score is not None and not (isinstance(score, np.ndarray) and score.flags.writeable):
      score = np.array(score, np.float32)
    layout = _normalisation_layout(ds, opt)
    for start in range(0, x.shape[0], _CHUNK):
      part = slice(start, start + _CHUNK)
      out = preprocess.normalize(
          np.asarray(x[part]), lengths[part], layout, method,
          score=None if score is None else np.asarray(score[part]),
          img_shape=None if ds.img_shape is None else ds.img_shape[part])
      x[part], lengths[part] = out.x, out.lengths
      if score is not None:
        score[part] = out.score
  # Recorded in the npz (key 'normalize'): sensor and estimator sources with --normalize=none
  # are raw coordinates; an npz/pyskl/MS-G3D input keeps what it said about itself (unknown:
  # nothing).
  if method != 'none':
    ds.meta['normalize'] = method
  elif opt.source in ('ntu_raw', 'etri_csv', 'synthetic', 'openpose', 'mediapipe'):
    ds.meta['normalize'] = 'none'
  ds.meta['normalize_ran'] = method
  return dataclasses.replace(ds, x=x, lengths=lengths, score=score)


def prepare(opt: PrepareOptions) -> tuple[SkeletonDataset, str]:
  """Reads, fits, normalises, optionally splits and writes; returns (dataset, summary text)."""
  _check_options(opt)
  ds = _read(opt)
  if opt.source == 'msg3d' and resolved_method(ds, opt.normalize) != 'none':
    ds.meta.setdefault('notes', []).append(
        'MS-G3D arrays are usually normalised already; --normalize=none keeps them as they are')
  try:
    ds = _fit_frames_and_normalize(ds, opt)
    if opt.split:
      from skeleton_anon.data import splits  # pylint: disable=g-import-not-at-top
      ds.split = splits.make_split(ds, opt.split, seed=opt.split_seed,
                                   test_fraction=opt.test_fraction)
    save_npz(ds, opt.output, overwrite=opt.overwrite, compress=opt.compress)
    return ds, summarize(ds, opt)
  finally:
    collect.release(ds)


def summarize(ds: SkeletonDataset, opt: PrepareOptions) -> str:
  """The human-readable report printed after a conversion."""
  lines = [f'wrote {opt.output}',
           f'  samples: {ds.num_samples} (persons {ds.num_persons}, frames {ds.num_frames}, '
           f'joints {ds.num_joints}, layout {ds.layout}, '
           f'{"3D" if ds.num_channels == 3 else "2D keypoints"}'
           f'{", with scores" if ds.score is not None else ""})',
           f'  subjects: {len(np.unique(ds.subject))}   actions: {len(np.unique(ds.action))}']
  if ds.gender is not None:
    counts = np.bincount(ds.gender + 1, minlength=3)
    lines.append(f'  genders (samples): 0: {counts[1]}, 1: {counts[2]}, unknown: {counts[0]}')
  else:
    lines.append('  genders: none')
  if ds.split is not None:
    lines.append(f'  split: train {int((ds.split == 0).sum())}, test {int((ds.split == 1).sum())}')
  else:
    lines.append("  split: none stored (the config's split rule applies)")
  lines.append(f'  normalize: {ds.meta.get("normalize_ran", opt.normalize)}; longer than '
               f'{opt.max_frames} frames and cropped: {ds.meta.get("cropped", 0)}')
  for note in ds.meta.get('notes', []):
    lines.append(f'  note: {note}')
  skipped = ds.meta.get('skipped', [])
  listed = [s for s in skipped if s.reason != 'in the missing-skeletons list']
  lines.append(f'  skipped: {len(skipped)}' +
               (f' ({len(skipped) - len(listed)} in the missing-skeletons list)'
                if len(listed) != len(skipped) else ''))
  lines += [f'    {s.name}: {s.reason}' for s in listed]
  return '\n'.join(lines)


def _define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum('source', None, list(SOURCES), 'Input format.')
  flags.DEFINE_string('input', None, 'Input folder or file (msg3d: DATA.npy[,TEST.npy]).')
  flags.DEFINE_string('output', None, 'Output .npz file.')
  flags.DEFINE_enum('normalize', 'auto', list(NORMALIZE),
                    'Pre-normalisation: auto = agcn for 3D, image (with an image size) or '
                    'skeleton for 2D keypoints; none keeps the coordinates exactly.')
  flags.DEFINE_integer('max_frames', 300, 'Frames per sample (pad with zeros / crop).')
  flags.DEFINE_integer('max_persons', None, 'Bodies kept per sample, most motion first '
                       '(default 2; 1 for etri_csv unless --keep_multi_person).')
  flags.DEFINE_integer('workers', len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                       else (os.cpu_count() or 1), 'Parser processes (ntu_raw, etri_csv).')
  flags.DEFINE_enum('on_error', 'stop', ['stop', 'skip'],
                    'On a bad file: stop with its error, or skip it and list it.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing output.')
  flags.DEFINE_string('labels', None, 'msg3d: the (names, labels) pickle(s), comma-separated.')
  flags.DEFINE_string('missing_list', None, 'ntu_raw: official missing-skeletons list.')
  flags.DEFINE_string('norm_joints', None, 'custom layouts: center,bottom,top,right,left joint '
                      'indices that --normalize rotates by (default: only centred on the root).')
  flags.DEFINE_string('gender_file', None, 'etri_csv: gender_age.txt (default: in --input); '
                      'ntu_raw: a per-performer gender CSV of P###,M|F rows.')
  flags.DEFINE_bool('keep_multi_person', False, 'etri_csv: keep two-person actions (A044-A048) '
                    'and samples where more than one body appears.')
  flags.DEFINE_string('pyskl_split', None, "pyskl: split name in the pickle, e.g. 'xsub'.")
  flags.DEFINE_string('layout', None, 'pyskl/openpose/mediapipe: registered layout (default: '
                      'from the joint count, 2D 17 -> coco17, 25 -> openpose25, 33 -> '
                      'mediapipe33; 3D 25 -> ntu25, 20 -> kinect_v1_20).')
  flags.DEFINE_string('name_pattern', None, 'pyskl/openpose/mediapipe: regular expression for '
                      "the sample names, e.g. 'P(?P<subject>\\d+)_A(?P<action>\\d+)' (groups "
                      'subject (required), action, gender, camera, setup, replication); default: '
                      'NTU/ETRI-style names.')
  flags.DEFINE_integer('name_base', 1, '--name_pattern: the number of the first subject and '
                       'action (1: P001 is subject 0).')
  flags.DEFINE_string('img_shape', None, 'pyskl/openpose/mediapipe: HEIGHT,WIDTH of the frames '
                      'when the files do not carry it (enables --normalize=image).')
  flags.DEFINE_bool('clip_scores', False, 'pyskl: clip keypoint scores into [0, 1] instead of '
                    'refusing the file.')
  flags.DEFINE_integer('keypoint_dims', 2, 'mediapipe: 2 keeps (x, y), 3 keeps (x, y, z).')
  flags.DEFINE_string('split', None, 'Store a split computed by this rule (file, ntu_xsub, '
                      'ntu_xview, ntu_xset, leakage_safe, by_subject, random, auto).')
  flags.DEFINE_integer('split_seed', 0, 'Seed of the by_subject / random split rules.')
  flags.DEFINE_float('test_fraction', 0.2, 'Test share of the by_subject / random rules.')
  flags.DEFINE_integer('num_subjects', 20, 'synthetic: number of subjects.')
  flags.DEFINE_integer('num_actions', 10, 'synthetic: number of actions.')
  flags.DEFINE_integer('repetitions', 2, 'synthetic: performances per subject and action.')
  flags.DEFINE_integer('seed', 0, 'synthetic: random seed.')
  flags.DEFINE_bool('compress', False, 'Write a compressed .npz (smaller, slower).')
  flags.DEFINE_bool('progress', True, 'Show a progress bar.')
  flags.mark_flags_as_required(['source', 'output'])
  return flags.FLAGS


def main(argv) -> None:
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  flag_values = _FLAGS
  names = [f.name for f in dataclasses.fields(PrepareOptions) if f.name != 'memmap_threshold']
  opt = PrepareOptions(**{n: getattr(flag_values, n) for n in names})
  try:
    _, summary = prepare(opt)
  except SkeletonAnonError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print(summary)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  _FLAGS = _define_flags()
  app.run(main)
