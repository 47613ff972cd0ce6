"""export/: the anonymized dataset (generic npz, plus MS-G3D npy+pkl when the input came so) and a
manifest saying what produced it.

Layout of the export directory:
  anonymized.npz          train and test together, `split` set (0 train, 1 test), generic format
  {train,val}_data_joint.npy, {train,val}_label.pkl
                          only when the input was MS-G3D arrays, in that format (N, 3, T, V, M)
  anonymized_pyskl.pkl    only when the input was a pyskl annotation pickle: a copy of it with
                          the anonymized keypoints (pyskl.write_pyskl), in its coordinates
  manifest.json           config, checkpoint step, report summary, SHA-256 of inputs and outputs
Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
from typing import Mapping, Sequence

import numpy as np

from skeleton_anon.data import formats, pyskl
from skeleton_anon.data.dataset import SkeletonDataset, save_npz
from skeleton_anon.data.rows import Rows
from skeleton_anon.evaluate.report import write_json

GENERIC_NAME = 'anonymized.npz'
MANIFEST_NAME = 'manifest.json'
# MS-G3D / 2s-AGCN file names, so the export drops into their data folders unchanged.
MSG3D_NAMES = {'train': ('train_data_joint.npy', 'train_label.pkl'),
               'test': ('val_data_joint.npy', 'val_label.pkl')}
PYSKL_NAME = 'anonymized_pyskl.pkl'
# export.draws = K > 1: draws 1..K-1 of every sample, beside the input-aligned draw 0.
DRAWS_NAME = 'anonymized_draws.npz'


def sha256_file(path, chunk: int = 1 << 20) -> str:
  """Hex SHA-256 of a file, read in chunks (inputs can be larger than memory)."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    while block := f.read(chunk):
      digest.update(block)
  return digest.hexdigest()


# Fields that are not one entry per sample; everything else in SkeletonDataset is.
_NOT_PER_SAMPLE = ('layout', 'edges', 'meta')


def combine_splits(train: SkeletonDataset, test: SkeletonDataset,
                   unlabelled: SkeletonDataset | None = None) -> SkeletonDataset:
  """One dataset holding train, test (and unlabelled) samples, with `split` 0/1 (the input
  file's shape of things). Unlabelled samples (privacy label unknown, used for nothing but
  export) keep their own split when they have one, else count as training data.

  When every part carries `meta['source_index']` (its positions in the input file), the samples
  are put back in the input's order, so the export lines up with the input sample by sample.
  When the parts' x are `data.rows.Rows` of one array at exactly those positions (the pipeline's
  anonymized splits, pipeline/anonymized.py), that array is the combined x as it stands: no
  copy of the coordinates is made (the same holds for score).
  """
  parts = [train, test] + ([unlabelled] if unlabelled is not None else [])
  for part in parts[1:]:
    if part.x.shape[1:] != train.x.shape[1:]:
      raise ValueError(f'sample shapes differ between the parts: {train.x.shape[1:]} and '
                       f'{part.x.shape[1:]}')
  sources = [part.meta.get('source_index') for part in parts]
  whole = {key: _whole(parts, sources, key) for key in ('x', 'score')}
  joined = {}
  for field in dataclasses.fields(SkeletonDataset):
    if field.name in _NOT_PER_SAMPLE or whole.get(field.name) is not None:
      continue
    values = [getattr(part, field.name) for part in parts]
    # An optional array missing from one part cannot be written for all samples: drop it.
    joined[field.name] = (None if any(v is None for v in values) else np.concatenate(values))
  splits = [np.zeros(train.num_samples, np.int8), np.ones(test.num_samples, np.int8)]
  if unlabelled is not None:
    splits.append(np.zeros(unlabelled.num_samples, np.int8) if unlabelled.split is None
                  else np.asarray(unlabelled.split, np.int8))
  joined['split'] = np.concatenate(splits)
  if all(src is not None for src in sources):
    order = np.argsort(np.concatenate(sources), kind='stable')
    joined = {k: None if v is None else v[order] for k, v in joined.items()}
  elif any(v is not None for v in whole.values()):
    raise AssertionError('whole arrays need source positions')   # _whole checked them
  for key, value in whole.items():
    if value is not None:
      joined[key] = value
  return dataclasses.replace(train, meta={'normalize': train.meta.get('normalize')}, **joined)


def concatenate_draws(draws: Sequence[SkeletonDataset]) -> SkeletonDataset:
  """One dataset of draws 1..K-1 (each a combine_splits result over the same samples), every
  sample's name suffixed with its draw ('~draw1', ...; unnamed samples are named by position)."""
  first = draws[0]
  base = (np.asarray(first.names, str) if first.names is not None
          else np.asarray([str(i) for i in range(first.num_samples)]))
  fields = {}
  for field in dataclasses.fields(SkeletonDataset):
    if field.name in _NOT_PER_SAMPLE or field.name == 'names':
      continue
    values = [getattr(d, field.name) for d in draws]
    fields[field.name] = None if any(v is None for v in values) else np.concatenate(
        [np.asarray(v) for v in values])
  names = np.concatenate([np.char.add(base, f'~draw{k}') for k in range(1, len(draws) + 1)])
  return dataclasses.replace(first, names=names, **fields)


def _whole(parts, sources, key: str):
  """The one array the parts' `key` are Rows of, when together they are all of it in order
  (part i's rows = sources[i], and the sources cover 0..N-1); else None."""
  values = [getattr(part, key) for part in parts]
  if any(not isinstance(v, Rows) or v.transform is not None for v in values):
    return None
  base = values[0].base
  if any(v.base is not base for v in values) or any(s is None for s in sources):
    return None
  if not all(np.array_equal(v.index, s) for v, s in zip(values, sources)):
    return None
  covered = np.sort(np.concatenate([np.asarray(s) for s in sources]))
  if len(covered) != len(base) or not np.array_equal(covered, np.arange(len(base))):
    return None
  return base


def write_pyskl_export(combined: SkeletonDataset, parts: Sequence[SkeletonDataset], template,
                       path, *, overwrite: bool = True) -> None:
  """The pyskl pickle of an export: `combined` (combine_splits of `parts`) written into a copy of
  `template`, 2D keypoints mapped back to the template's pixels with the normaliser's per-sample
  offset and scale (meta['denormalize'], in input order, looked up by meta['source_index'])."""
  if not template:
    raise ValueError('a pyskl export needs the pickle the data came from (pyskl_template)')
  offset = scale = None
  params = parts[0].meta.get('denormalize')
  if params is not None:
    sources = [part.meta.get('source_index') for part in parts]
    if any(src is None for src in sources):
      raise ValueError('pyskl export of normalised 2D data needs meta source_index per part')
    index = np.sort(np.concatenate(sources))      # combine_splits' order
    offset, scale = params['offset'][index], params['scale'][index]
  pyskl.write_pyskl(combined, template, path, offset=offset, scale=scale, overwrite=overwrite)


def build_manifest(*, config: Mapping | None, checkpoint_step: int | None,
                   report_summary: Mapping | None, input_files: Sequence[str],
                   outputs: Mapping[str, str]) -> dict:
  """The manifest: what produced the export, and checksums to tell the files apart later."""
  return {
      'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'config': dict(config) if config is not None else None,
      'checkpoint_step': None if checkpoint_step is None else int(checkpoint_step),
      'report_summary': report_summary,
      'inputs': {os.path.abspath(p): sha256_file(p) for p in input_files if os.path.isfile(p)},
      'outputs': {name: sha256_file(path) for name, path in outputs.items()},
  }


def export_anonymized(train: SkeletonDataset, test: SkeletonDataset, export_dir, *,
                      unlabelled: SkeletonDataset | None = None,
                      source_format: str | None = None, config: Mapping | None = None,
                      checkpoint_step: int | None = None, report_summary: Mapping | None = None,
                      input_files: Sequence[str] = (), overwrite: bool = True,
                      pyskl_template: str | None = None,
                      draws: Sequence[tuple] = ()) -> dict:
  """Writes the anonymized train and test sets and the manifest into `export_dir`.

  Args:
    train, test: anonymized datasets (labels as in the input).
    export_dir: directory to write into (created when missing).
    unlabelled: anonymized samples whose privacy label is unknown (generic npz only).
    source_format: the input's format; 'msg3d' adds the MS-G3D npy+pkl files, 'pyskl' the
      pyskl pickle (also written when the datasets' meta says source 'pyskl').
    config, checkpoint_step, report_summary: recorded in the manifest.
    input_files: the files the run read (their SHA-256 goes into the manifest).
    overwrite: replace files of an earlier export.
    pyskl_template: the pyskl pickle the run read (default: the datasets' meta['path']); its
      annotations, fields and split lists shape the pyskl output.
    draws: (train, test, unlabelled) of further anonymized draws of the same samples; written
      together to DRAWS_NAME (generic npz), draw k's names suffixed '~draw{k}'.

  Returns:
    {file name: path} of everything written, the manifest included.
  """
  export_dir = os.fspath(export_dir)
  os.makedirs(export_dir, exist_ok=True)
  outputs = {}
  generic = os.path.join(export_dir, GENERIC_NAME)
  combined = combine_splits(train, test, unlabelled)
  save_npz(combined, generic, overwrite=overwrite)
  outputs[GENERIC_NAME] = generic
  if source_format == 'pyskl' or train.meta.get('source') == 'pyskl':
    parts = [train, test] + ([unlabelled] if unlabelled is not None else [])
    path = os.path.join(export_dir, PYSKL_NAME)
    write_pyskl_export(combined, parts, pyskl_template or train.meta.get('path'), path,
                       overwrite=overwrite)
    outputs[PYSKL_NAME] = path
  if draws:
    path = os.path.join(export_dir, DRAWS_NAME)
    save_npz(concatenate_draws([combine_splits(*parts) for parts in draws]), path,
             overwrite=overwrite)
    outputs[DRAWS_NAME] = path
  if source_format == 'msg3d':
    for part, ds in (('train', train), ('test', test)):
      data_name, label_name = MSG3D_NAMES[part]
      data_path, label_path = (os.path.join(export_dir, n) for n in (data_name, label_name))
      formats.write_msg3d(ds, data_path, label_path, overwrite=overwrite)
      outputs[data_name], outputs[label_name] = data_path, label_path
  manifest = build_manifest(config=config, checkpoint_step=checkpoint_step,
                            report_summary=report_summary, input_files=input_files,
                            outputs=outputs)
  manifest_path = os.path.join(export_dir, MANIFEST_NAME)
  write_json(manifest, manifest_path, overwrite=overwrite)
  outputs[MANIFEST_NAME] = manifest_path
  return outputs
