r"""Converts a skeleton dataset in any supported format into the generic `.npz` (DESIGN sec. 2).

  python -m skeleton_anon.prepare --source=ntu_raw --input=nturgb+d_skeletons/ \
      --missing_list=NTU_RGBD_samples_with_missing_skeletons.txt --output=ntu60.npz
  python -m skeleton_anon.prepare --source=etri_csv --input=etri/ --output=etri.npz
  python -m skeleton_anon.prepare --source=msg3d --input=train_data_joint.npy,val_data_joint.npy \
      --labels=train_label.pkl,val_label.pkl --output=ntu_xview.npz --normalize=none
  python -m skeleton_anon.prepare --source=pyskl --input=ntu60_3danno.pkl --pyskl_split=xsub \
      --output=ntu60_xsub.npz
  python -m skeleton_anon.prepare --source=synthetic --num_subjects=40 --output=synthetic.npz

Every error reaches the user as one line (`error: <file>: <sample>: <problem>`), exit status 1.
With --on_error=skip, unreadable files are left out and listed with their reason instead.
For msg3d, two comma-separated inputs (and label files) become the train (0) and test (1)
split. --split=RULE stores a split computed by `splits.make_split` (see skeleton_anon/data/
splits.py); without it the file keeps the source's own split, if any.
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

SOURCES = ('ntu_raw', 'etri_csv', 'msg3d', 'pyskl', 'npz', 'synthetic')
NORMALIZE = ('none', 'agcn', 'pyskl')
_CHUNK = 1024  # samples normalised at once: bounds temporary memory for memory-mapped data


@dataclasses.dataclass
class PrepareOptions:
  """Everything `prepare` needs; the command-line flags map onto these one to one."""
  source: str
  output: str
  input: str | None = None
  normalize: str = 'agcn'
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
    from skeleton_anon.data import formats  # pylint: disable=g-import-not-at-top
    return formats.read_pyskl(opt.input, split=opt.pyskl_split, buffer=buffer, **common)
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


def _fit_frames_and_normalize(ds: SkeletonDataset, opt: PrepareOptions) -> SkeletonDataset:
  """Pads/crops to --max_frames, then normalises chunk by chunk, in place where possible."""
  from skeleton_anon.data import preprocess  # pylint: disable=g-import-not-at-top
  x, lengths = ds.x, np.array(ds.lengths, np.int32)
  if x.shape[2] != opt.max_frames:
    ds.meta['cropped'] = ds.meta.get('cropped', 0) + int((lengths > opt.max_frames).sum())
    x, lengths = preprocess.pad_or_crop(x, lengths, opt.max_frames)
  if opt.normalize != 'none':
    if not (isinstance(x, np.ndarray) and x.flags.writeable):
      x = np.array(x, np.float32)
    layout = _normalisation_layout(ds, opt)
    for start in range(0, x.shape[0], _CHUNK):
      part = slice(start, start + _CHUNK)
      x[part], lengths[part] = preprocess.pre_normalize(
          np.asarray(x[part]), lengths[part], layout, opt.normalize)
  # Recorded in the npz (key 'normalize'): sensor sources with --normalize=none are raw
  # coordinates; an npz/pyskl/MS-G3D input keeps what it said about itself (unknown: nothing).
  if opt.normalize != 'none':
    ds.meta['normalize'] = opt.normalize
  elif opt.source in ('ntu_raw', 'etri_csv', 'synthetic'):
    ds.meta['normalize'] = 'none'
  return dataclasses.replace(ds, x=x, lengths=lengths)


def prepare(opt: PrepareOptions) -> tuple[SkeletonDataset, str]:
  """Reads, fits, normalises, optionally splits and writes; returns (dataset, summary text)."""
  _check_options(opt)
  ds = _read(opt)
  if opt.source == 'msg3d' and opt.normalize != 'none':
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
           f'joints {ds.num_joints}, layout {ds.layout})',
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
  lines.append(f'  normalize: {opt.normalize}; longer than {opt.max_frames} frames and '
               f'cropped: {ds.meta.get("cropped", 0)}')
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
  flags.DEFINE_enum('normalize', 'agcn', list(NORMALIZE),
                    'Pre-normalisation: none keeps the sensor coordinates exactly.')
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
