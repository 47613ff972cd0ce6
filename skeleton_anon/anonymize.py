"""python -m skeleton_anon.anonymize --workdir=DIR --input=FILE --output=FILE [--overwrite]

Applies the anonymizer trained in DIR to a new dataset, batch by batch, in the input's format:
a generic `.npz` gives a generic `.npz` (labels, names and layout copied), an MS-G3D
`(N, 3, T, V, M)` `.npy` gives such a `.npy` (its label pickle still matches it), a pyskl
annotation `.pkl` gives a copy of it with anonymized keypoints (read whole, normalised as the
anonymizer's training data was, mapped back to the input's pixels; `pyskl.write_pyskl`). Memory stays
bounded by --batch_size: the output is streamed into a memory-mapped temporary file and renamed
onto --output only when complete. The input is never modified; an existing output is refused
without --overwrite. A workdir without a trained anonymizer, or data whose layout, persons or
joint count differ from what the anonymizer was trained on, is a one-line error.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys

from absl import app, flags

import numpy as np

from skeleton_anon.errors import DataError, SkeletonAnonError



def _define_flags():
  # Defined only when run as a command, so importing this module (from tests or a notebook,
  # next to other command modules that also define --workdir) registers no global flags.
  flags.DEFINE_string('workdir', None, 'Workdir of a run whose anonymize stage finished.')
  flags.DEFINE_string('input', None, 'Dataset to anonymize: generic .npz, MS-G3D .npy or pyskl '
                      '.pkl.')
  flags.DEFINE_string('output', None, 'Where to write the anonymized dataset.')
  flags.DEFINE_bool('overwrite', False, 'Replace --output when it exists.')
  flags.DEFINE_integer('batch_size', 64, 'Samples per batch (bounds memory).')

FLAGS = flags.FLAGS
FORMATS = {'.npz': 'npz', '.npy': 'msg3d', '.pkl': 'pyskl', '.pickle': 'pyskl'}


def input_format(path: str) -> str:
  """'npz', 'msg3d' or 'pyskl' from the file extension; anything else is a DataError."""
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise DataError(path, f'unsupported input format {ext!r}; use a generic .npz, an MS-G3D '
                    '(N, 3, T, V, M) .npy or a pyskl annotation .pkl')
  return FORMATS[ext]


def _edge_set(edges) -> set:
  return {tuple(sorted(map(int, e))) for e in edges}


def compatibility_check(info: dict, path: str):
  """A check(x, layout, edges=, normalize=) that refuses data the anonymizer was not trained
  for: other persons, joints or layout, a custom skeleton with other edges (same joint count,
  another joint order), or coordinates normalised otherwise (when both sides record it)."""
  def check(x, layout, *, edges=None, normalize=None):
    problems = []
    if info.get('edges') is not None and edges is not None and \
        _edge_set(edges) != _edge_set(info['edges']):
      problems.append('other edges (another skeleton or joint order with the same joint count)')
    trained_on = info.get('normalize')
    if trained_on is not None and normalize is not None and str(normalize) != trained_on:
      problems.append(f"coordinates normalised by {str(normalize)!r} (anonymizer: "
                      f"{trained_on!r}; prepare the file with --normalize={trained_on})")
    if x.shape[1] != info['num_persons']:
      problems.append(f"{x.shape[1]} persons (anonymizer: {info['num_persons']})")
    if x.shape[3] != info['num_joints']:
      problems.append(f"{x.shape[3]} joints (anonymizer: {info['num_joints']})")
    channels = int(info.get('num_channels', 3))
    if x.shape[4] != channels:
      problems.append(f"{x.shape[4]}D coordinates (anonymizer: {channels}D)")
    if layout is not None and layout != info['layout']:
      problems.append(f"layout {layout!r} (anonymizer: {info['layout']!r})")
    if problems:
      raise DataError(path, 'does not match the trained anonymizer: data has ' +
                      ', '.join(problems))
  return check


def anonymize_file(workdir: str, input_path: str, output_path: str, *, overwrite: bool = False,
                   batch_size: int = 64, progress=None) -> int:
  """Library form of the command; returns the number of samples written."""
  from skeleton_anon.evaluate import streaming
  from skeleton_anon.pipeline.anonymizer import load_anonymizer
  from skeleton_anon.train import parallel

  fmt = input_format(input_path)
  if not os.path.exists(input_path):
    raise DataError(input_path, 'file does not exist')
  if batch_size <= 0:
    raise DataError(None, f'--batch_size must be positive, got {batch_size}')
  mesh = parallel.make_mesh()
  anonymizer, info = load_anonymizer(workdir, mesh)
  # (outputs, their lengths): the inputs' unless a prior's output_duration draws them.
  apply = functools.partial(anonymizer.apply_with_lengths, mesh=mesh, batch_size=batch_size)
  if fmt == 'pyskl':
    return anonymize_pyskl(input_path, output_path, apply, info, overwrite=overwrite,
                           check=compatibility_check(info, input_path), progress=progress)
  stream = streaming.anonymize_npz if fmt == 'npz' else streaming.anonymize_msg3d_npy
  return stream(input_path, output_path, apply, batch_size=batch_size, overwrite=overwrite,
                check=compatibility_check(info, input_path), progress=progress)


def anonymize_pyskl(input_path: str, output_path: str, apply, info: dict, *,
                    overwrite: bool = False, check=None, progress=None) -> int:
  """A pyskl pickle through `apply(x, lengths) -> (x', lengths')`: read with the anonymizer's
  persons and frames, normalised by its recorded method ('auto' when unknown), written back as
  pyskl."""
  from skeleton_anon.data import collect, pyskl, setup
  from skeleton_anon.errors import OutputExistsError
  if os.path.abspath(input_path) == os.path.abspath(output_path):
    raise DataError(output_path, '--output must differ from --input')
  if os.path.exists(output_path) and not overwrite:
    raise OutputExistsError(output_path)
  ds = pyskl.read_pyskl(input_path, max_persons=int(info['num_persons']),
                          max_frames=int(info['num_frames']))
  try:
    ds = setup.normalized(ds, info.get('normalize') or 'auto')
  finally:
    collect.release(ds)
  if check is not None:
    check(ds.x, ds.layout, normalize=ds.meta['normalize'])
  out, played = apply(ds.x, ds.lengths)
  anonymized = dataclasses.replace(ds.with_x(np.asarray(out, np.float32)),
                                   lengths=np.asarray(played, np.int32))
  params = ds.meta.get('denormalize') or {}
  written = pyskl.write_pyskl(anonymized, input_path, output_path,
                              offset=params.get('offset'), scale=params.get('scale'),
                              overwrite=overwrite)
  if progress is not None:
    progress(written, written)
  return written


def guarantee_text(workdir: str) -> str:
  """The anonymizer's differential-privacy line, from its anonymizer.json."""
  from skeleton_anon import pathio
  from skeleton_anon.evaluate.report import guarantee_line
  path = pathio.as_path(workdir) / 'anonymizer' / 'anonymizer.json'
  info = pathio.read_json(path) if path.exists() else {}
  return guarantee_line(info.get('differential_privacy')).replace('**', '')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from tqdm import tqdm
  bar = tqdm(unit='samples', desc='anonymize', file=sys.stderr)

  def progress(done, total):
    bar.total = total
    bar.update(done - bar.n)

  try:
    count = anonymize_file(FLAGS.workdir, FLAGS.input, FLAGS.output, overwrite=FLAGS.overwrite,
                           batch_size=FLAGS.batch_size, progress=progress)
  except SkeletonAnonError as e:
    bar.close()
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  bar.close()
  print(f'anonymized {count} samples -> {FLAGS.output}')
  print(guarantee_text(FLAGS.workdir))


def run():
  _define_flags()
  flags.mark_flags_as_required(['workdir', 'input', 'output'])
  app.run(main)


if __name__ == '__main__':
  run()
