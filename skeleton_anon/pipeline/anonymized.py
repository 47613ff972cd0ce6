"""The anonymized splits of a run, computed once and shared by the evaluate and export stages,
and the disk-backed scratch arrays that keep a big run's memory bounded.

A run whose input is memory-mapped (an uncompressed npz, data/npz_mmap.py) is "bounded": its
splits are `data.rows.Rows` of the map, and every full-size array the run derives from them is
either computed a batch at a time when read (`retarget_view`) or written chunk by chunk into a
memory map under the scratch folder (`scratch_array`): file-backed pages, which the kernel
writes out and drops instead of holding them as the process's own memory. A run on in-memory
data (the synthetic generator, a pyskl pickle) keeps these arrays in RAM, as before.

`anonymized_splits(run)` anonymizes every input sample once, split by split in each split's own
order and batches (so the values are exactly those of `run.anonymize(split.x, split.lengths)`),
into one array in the input file's order: the export's `x` as it stands, and train, test and
unlabelled as Rows of it. Bounded, that array is scratch/anonymized_p<process>.npy with a
sidecar saying which anonymizer made it, so an export that resumes after a finished evaluation
reuses it. The scratch folder is workdir/scratch (for a URL workdir a local temporary folder)
and is removed when the run's last data stage has finished (`remove_scratch`).
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib

import jax
import numpy as np
from absl import logging

from skeleton_anon import multihost, pathio
from skeleton_anon.data import rows as rows_lib, transforms
from skeleton_anon.data.rows import Rows

SCRATCH = 'scratch'
ANONYMIZED = 'anonymized'


def is_bounded(run) -> bool:
  """Whether the run's splits read from a memory-mapped file (then derived arrays go to disk)."""
  parts = (run.data.train, run.data.test, run.data.unlabelled)
  return any(p is not None and rows_lib.is_mapped(p.x) for p in parts)


def scratch_dir(workdir) -> str:
  """The local scratch folder of a workdir: workdir/scratch, or for a URL workdir a folder of the
  local temporary directory named after it."""
  if pathio.is_url(workdir):
    digest = zlib.crc32(os.fspath(workdir).encode())
    return os.path.join(tempfile.gettempdir(), f'skeleton_anon_scratch_{digest:08x}')
  return os.path.join(os.fspath(pathio.as_path(workdir)), SCRATCH)


def _scratch_path(run, name: str) -> str:
  # Processes of one run may share a local workdir: each has its own files.
  return os.path.join(scratch_dir(run.workdir), f'{name}_p{jax.process_index()}.npy')


def scratch_array(run, name: str, shape) -> np.ndarray:
  """A float32 array of `shape` to write into: bounded, a new memory map scratch/<name>_p<i>.npy
  (replacing an earlier one); otherwise an in-memory array."""
  shape = tuple(int(s) for s in shape)
  if not is_bounded(run):
    return np.empty(shape, np.float32)
  path = _scratch_path(run, name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  return np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=shape)


def drop_scratch_array(run, name: str) -> None:
  """Removes scratch/<name>_p<i>.npy if there is one (its memory maps stay valid until closed)."""
  path = _scratch_path(run, name)
  if os.path.exists(path):
    os.remove(path)


def remove_scratch(run) -> None:
  """Removes this process's scratch files, and the scratch folder once it is empty."""
  folder = scratch_dir(run.workdir)
  if not os.path.isdir(folder):
    return
  suffix = f'_p{jax.process_index()}.npy'
  for name in os.listdir(folder):
    if name.endswith(suffix) or name.endswith(suffix + '.json'):
      os.remove(os.path.join(folder, name))
  try:
    os.rmdir(folder)
    logging.info('scratch folder %s removed', folder)
  except OSError:
    pass          # another process's files are still there


def retarget_view(x, lengths, layout, target, *, lazy: bool) -> np.ndarray | Rows:
  """transforms.retarget(x, lengths, layout, target), or (lazy) Rows of x that compute it a
  batch at a time. Retargeting is per sample, so both give the same values."""
  if not lazy:
    return transforms.retarget(x, lengths, layout, target)
  lengths = np.asarray(lengths)
  return Rows(x, transform=lambda chunk, positions: transforms.retarget(
      chunk, lengths[positions], layout, target))


def _parts(run):
  data = run.data
  return [(name, part) for name, part in
          (('train', data.train), ('test', data.test), ('unlabelled', data.unlabelled))
          if part is not None]


def _sidecar(run, shape) -> dict:
  return {'fingerprint': run.io.stamps.get('anonymize', {}).get('fingerprint'),
          'step': int(run.anonymizer.step), 'shape': list(shape),
          'processes': jax.process_count()}


def _lengths_of_outputs(x_anon) -> np.ndarray:
  """Lengths read off anonymized outputs (frames past an output's end are zero), a chunk at a
  time: for a scratch copy reused from an earlier process, whose lengths were not kept."""
  return np.concatenate([transforms.lengths_from_frames(np.asarray(x_anon[lo:lo + 256]))
                         for lo in range(0, len(x_anon), 256)] or [np.zeros(0, np.int32)])


def anonymized_splits(run) -> dict:
  """{'train', 'test', 'unlabelled' (None when the run has none), 'lengths' ({split: lengths
  [N]}: the input's unless the anonymizer changes durations)}: the anonymized splits, each the
  same values as run.anonymize(split.x, split.lengths), computed once per run (see the module
  docstring)."""
  if run.anonymized is not None and run.anonymized[0] is run.anonymizer:
    return run.anonymized[1]
  if run.anonymizer is None:
    raise RuntimeError('the anonymize stage has not run')
  parts = _parts(run)
  sources = [part.meta.get('source_index') for _, part in parts]
  batch_size = int(run.config.evaluate.batch_size)
  # The outputs' lengths: the inputs' unless the anonymizer changes durations (then those its
  # chunks report while anonymizing).
  lengths = {name: np.asarray(part.lengths).copy() for name, part in parts}
  if any(s is None for s in sources):
    # Splits that do not say where they came from (made by hand): anonymized one by one.
    out = {}
    for name, part in parts:
      out[name], lengths[name] = run.anonymizer.apply_with_lengths(
          part.x, part.lengths, mesh=run.mesh, batch_size=batch_size)
  else:
    total = sum(len(s) for s in sources)
    shape = (total,) + tuple(parts[0][1].x.shape[1:])
    everything = _reuse(run, shape) if is_bounded(run) else None
    # Anonymizing is a collective over every process's devices: all reuse, or all recompute.
    if not multihost.every_process(everything is not None):
      everything = None
    if everything is None:
      everything = scratch_array(run, ANONYMIZED, shape)
      for (name, part), source in zip(parts, sources):
        logging.info('anonymizing the %s split (%d samples)', name, part.num_samples)
        for lo, chunk, played in run.anonymizer.apply_chunks(
            part.x, part.lengths, mesh=run.mesh, batch_size=batch_size, with_lengths=True):
          everything[np.asarray(source[lo:lo + len(chunk)])] = chunk
          lengths[name][lo:lo + len(chunk)] = played
      if isinstance(everything, np.memmap):
        everything.flush()
        path = _scratch_path(run, ANONYMIZED)
        pathio.write_json(path + '.json', _sidecar(run, shape))
        everything = np.load(path, mmap_mode='r')
    elif run.anonymizer.changes_duration:
      lengths = {name: _lengths_of_outputs(Rows(everything, source))
                 for (name, _), source in zip(parts, sources)}
    out = {name: Rows(everything, source) for (name, _), source in zip(parts, sources)}
  out['lengths'] = lengths
  out.setdefault('unlabelled', None)
  run.anonymized = (run.anonymizer, out)
  return out


def _reuse(run, shape) -> np.ndarray | None:
  """The scratch anonymized array of an earlier process of this run, if the same anonymizer
  made it for the same data; else None."""
  path = _scratch_path(run, ANONYMIZED)
  try:
    with open(path + '.json') as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  if info != _sidecar(run, shape) or info['fingerprint'] is None:
    return None
  try:
    array = np.load(path, mmap_mode='r')
  except (OSError, ValueError):
    return None
  if array.shape != tuple(shape) or array.dtype != np.float32:
    return None
  logging.info('anonymized splits: reusing %s (same anonymizer)', path)
  return array


def anonymized_all(run) -> np.ndarray | None:
  """Every input sample anonymized, in the input's order (the export's x), or None when the
  splits do not carry their source positions."""
  splits = anonymized_splits(run)
  first = splits['train']
  return first.base if isinstance(first, Rows) else None
