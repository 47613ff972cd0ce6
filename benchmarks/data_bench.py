"""Data-preparation benchmarks: NTU raw parsing and pre_normalization, ours against baselines.

On the same generated input (benchmarks/ntu_files.py) this times
  * parsing, one worker: `skeleton_anon.data.ntu.read_skeleton` per file, against the
    straightforward line-by-line parser of naive_data.py (and, via reference_torch.py, the
    reference's `read_xyz`); frames/s and files/s per worker process;
  * the whole folder reader `read_ntu` with 1 and more worker processes (person selection, padding,
    validation included);
  * pre_normalization at T=300: `skeleton_anon.data.preprocess.pre_normalize` (vectorised) against
    the per-sample loop of naive_data.py (and the reference's `pre_normalization`).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

import numpy as np

from benchmarks import naive_data, ntu_files
from skeleton_anon.data import collect, ntu, preprocess


@dataclasses.dataclass
class DataInputs:
  """The shared input of every data measurement."""
  skeleton_dir: str
  paths: list[str]
  total_frames: int
  x: np.ndarray         # [N, M, 300, V, 3] as parsed and padded, before normalisation
  lengths: np.ndarray   # [N]
  npy_path: str         # x in the reference's [N, 3, T, V, M] layout


def prepare_inputs(work_dir: str, num_files: int, seed: int = 0,
                   max_frames: int = 300) -> DataInputs:
  """Writes the .skeleton files and the reference-layout array under `work_dir`."""
  skeleton_dir = os.path.join(work_dir, 'skeletons')
  paths, total_frames = ntu_files.write_ntu_files(skeleton_dir, num_files, seed=seed)
  ds = ntu.read_ntu(skeleton_dir, max_frames=max_frames, progress=False)
  try:
    x, lengths = np.array(ds.x), np.array(ds.lengths)
  finally:
    collect.release(ds)
  npy_path = os.path.join(work_dir, 'reference_input.npy')
  np.save(npy_path, np.ascontiguousarray(np.transpose(x, (0, 4, 2, 3, 1))))
  return DataInputs(skeleton_dir, paths, total_frames, x, lengths, npy_path)


def _timed(fn, repeats: int) -> tuple[float, object]:
  """Median seconds over `repeats` calls, and the last result."""
  times, result = [], None
  for _ in range(max(1, repeats)):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), result


def _parse_result(name: str, implementation: str, seconds: float, inputs: DataInputs,
                  workers: int = 1) -> dict:
  files = len(inputs.paths)
  return {'name': name, 'implementation': implementation, 'samples_per_s': files / seconds,
          'frames_per_s': inputs.total_frames / seconds, 'files': files,
          'total_frames': inputs.total_frames, 'seconds': seconds, 'workers': workers,
          'batch': 1, 'frames': round(inputs.total_frames / files), 'devices': 1}


def bench_parse(inputs: DataInputs, repeats: int = 3) -> list[dict]:
  """Per-worker parsing: ours and the naive parser, every file once per repeat."""
  ours, parsed = _timed(lambda: [ntu.read_skeleton(p) for p in inputs.paths], repeats)
  naive, parsed_naive = _timed(
      lambda: [naive_data.parse_skeleton_naive(p) for p in inputs.paths], 1)
  agree = all(np.array_equal(a, b) for a, b in zip(parsed, parsed_naive))
  results = [_parse_result('ntu_parse', 'jax', ours, inputs),
             _parse_result('ntu_parse', 'naive_per_sample', naive, inputs)]
  results[0]['matches_naive'] = bool(agree)
  return results


def bench_read_ntu(inputs: DataInputs, workers: int) -> dict:
  """The whole folder reader (select persons, pad, validate) with `workers` processes."""
  def read():
    ds = ntu.read_ntu(inputs.skeleton_dir, workers=workers, progress=False)
    collect.release(ds)
  seconds, _ = _timed(read, 1)
  return _parse_result('ntu_read_folder', 'jax', seconds, inputs, workers=workers)


def bench_pre_normalization(inputs: DataInputs, repeats: int = 5) -> list[dict]:
  """pre_normalization at T=300: vectorised (ours) and per-sample (naive), same array."""
  n, t = inputs.x.shape[0], inputs.x.shape[2]
  ours, (normalised, _) = _timed(
      lambda: preprocess.pre_normalize(inputs.x, inputs.lengths, 'ntu25', 'agcn'), repeats)
  naive, naive_out = _timed(lambda: naive_data.pre_normalize_naive(inputs.x), 1)
  common = {'name': 'pre_normalization', 'batch': n, 'frames': t, 'devices': 1}
  return [
      {**common, 'implementation': 'jax', 'samples_per_s': n / ours, 'seconds': ours,
       'max_abs_diff_vs_naive': float(np.max(np.abs(normalised - naive_out)))},
      {**common, 'implementation': 'naive_per_sample', 'samples_per_s': n / naive,
       'seconds': naive},
  ]


def compare_with_reference_output(inputs: DataInputs, reference_npy: str) -> float:
  """Max |ours - reference| after pre_normalization (reference output in [N, 3, T, V, M])."""
  reference = np.transpose(np.load(reference_npy), (0, 4, 2, 3, 1))
  ours, _ = preprocess.pre_normalize(inputs.x, inputs.lengths, 'ntu25', 'agcn')
  return float(np.max(np.abs(ours - reference)))
