"""Memory and time of the whole pipeline on an NTU60-sized file (issue 13, item 1).

  python benchmarks/scale.py --json OUT.json [--samples=N] [--keep] [--dir=DIR]

Writes a synthetic NTU60-shaped generic npz (default 56,880 x 2 x 300 x 25 x 3 float32, 10 GB)
straight to disk, never holding it in RAM: the zip is streamed member by member (`zipfile` +
`np.lib.format` headers, uncompressed, so the pipeline memory-maps it). Its content is a small
`synthetic.make_synthetic` set at T=300 (40 subjects x 60 actions, 2 persons, agcn-normalised),
tiled with per-copy sensor noise, with NTU-style names (the copy is the setup), valid labels and a
stored cross-subject split (NTU's xsub training subjects). The file is made in a child process,
so the pipeline's measurement holds none of it.

Then the pipeline runs on it with tiny models and one epoch (`scale_config`): every data-path
stage reads the whole file (loading and validation, the split, retargeting first, anonymizing
every sample, evaluation on the whole test split and the anonymized copies, the export). A
thread samples RssAnon (anonymous resident memory: heap, numpy and XLA buffers; the memory map's
file-backed pages do not count) from /proc/self/status every 20 ms. OUT.json is a JSON list of
one object per stage, {"stage", "seconds", "peak_anon_mib"} ('load' is make_run: the data
loaded, validated and split, the workdir checked), then {"stage": "total", ...} with the
sample count, the file's size and the machine's memory.

--keep leaves the data file and the workdir (under --dir, default a temporary folder) in place
(a kept file is reused by the next run with the same --samples). --trace=CSV writes the peak of
every 0.5 s window with its stage; --max_anon_mib=M aborts (exit 3) when RssAnon passes M, for
shared machines. Results of 2026-12-02: BENCHMARKS.md "Bounded memory from input to export".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from benchmarks.jax_steps import proc_status_mib  # noqa: E402

NTU60_SAMPLES = 56_880
NUM_PERSONS, NUM_FRAMES, NUM_JOINTS = 2, 300, 25
# NTU RGB+D's cross-subject training performers (1-based, as in the names).
XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
BASE = dict(num_subjects=40, num_actions=60, repetitions=1, num_views=1)
COPY_NOISE = 0.002          # per-copy jitter (the data's units: metres)
CHUNK = 256                 # samples written at once


# ---------------------------------------------------------------- memory sampling

def rss_anon_mib() -> float:
  """This process's RssAnon (anonymous resident memory) in MiB: the memory map's file-backed
  pages do not count."""
  return proc_status_mib('RssAnon')


class PeakSampler:
  """Samples RssAnon every `interval` seconds in a thread; `take()` returns the peak since the
  last take (and starts a new window)."""

  def __init__(self, interval: float = 0.02, trace: str = '', limit_mib: float = 0.0):
    self.interval = interval
    self.limit_mib = limit_mib
    self._lock = threading.Lock()
    self._peak = self._overall = rss_anon_mib()
    self._stop = threading.Event()
    self.stage = 'start'
    self._trace = open(trace, 'w') if trace else None
    self._begin = time.time()
    self._thread = threading.Thread(target=self._run, name='rss-sampler', daemon=True)
    self._thread.start()

  def _run(self):
    last, window = 0.0, 0.0
    while not self._stop.wait(self.interval):
      value = rss_anon_mib()
      self._note(value)
      window = max(window, value)
      if self.limit_mib and value > self.limit_mib:
        # A guard for shared machines: better a failed measurement than an OOM-killed neighbour.
        print(json.dumps({'stage': self.stage, 'aborted': f'RssAnon {value:.0f} MiB over '
                          f'--max_anon_mib={self.limit_mib:.0f}'}), flush=True)
        os._exit(3)
      now = time.time() - self._begin
      if self._trace is not None and now - last >= 0.5:
        self._trace.write(f'{now:.1f},{self.stage},{window:.0f}\n')   # the window's peak
        self._trace.flush()
        last, window = now, 0.0

  def _note(self, value: float):
    with self._lock:
      self._peak = max(self._peak, value)
      self._overall = max(self._overall, value)

  def take(self) -> float:
    self._note(rss_anon_mib())
    with self._lock:
      peak, self._peak = self._peak, rss_anon_mib()
    return peak

  @property
  def overall(self) -> float:
    self._note(rss_anon_mib())
    return self._overall

  def close(self):
    self._stop.set()
    self._thread.join()
    if self._trace is not None:
      self._trace.close()


# ---------------------------------------------------------------- the file

def _write_member(z: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
  with z.open(key + '.npy', 'w', force_zip64=True) as f:
    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def _base_set(seed: int, base: dict | None = None, num_frames: int = NUM_FRAMES):
  """The small set every copy is made from, agcn-normalised like a `prepare`d NTU file."""
  from skeleton_anon.data import preprocess, synthetic
  ds = synthetic.make_synthetic(**(base or BASE), num_frames=num_frames,
                                num_persons=NUM_PERSONS, seed=seed)
  out = preprocess.normalize(ds.x, ds.lengths, ds.get_layout(), 'agcn')
  return ds, out.x, out.lengths


def write_ntu_sized(path: str, num_samples: int, *, seed: int = 0, base: dict | None = None,
                    num_frames: int = NUM_FRAMES) -> dict:
  """Writes the synthetic NTU60-shaped npz at `path` chunk by chunk; returns facts about it.

  Sample i is base sample order[i % B] of copy i // B (B = the base set's size, 2400 with the
  default `base`; `order` a fixed permutation so that any prefix mixes subjects and actions),
  plus the copy's own noise on valid frames of present persons. Names say the copy as setup
  S<copy+1>. `base` (make_synthetic's subjects, actions, repetitions, views) and `num_frames`
  shrink it for tests.
  """
  from skeleton_anon.data.transforms import valid_mask
  ds, base_x, base_lengths = _base_set(seed, base, num_frames)
  num_base = len(base_x)
  rng = np.random.default_rng([seed, 7])
  order = rng.permutation(num_base)
  pick = order[np.arange(num_samples) % num_base]
  copy = np.arange(num_samples) // num_base
  subject = ds.subject[pick].astype(np.int32)
  names = np.asarray([f'S{c + 1:03d}{str(ds.names[b])[4:]}' for c, b in zip(copy, pick)])
  small = {
      'lengths': base_lengths[pick].astype(np.int32), 'action': ds.action[pick].astype(np.int32),
      'subject': subject, 'gender': ds.gender[pick].astype(np.int32),
      'split': (~np.isin(subject + 1, XSUB_TRAIN)).astype(np.int8), 'names': names,
      'camera': ds.camera[pick].astype(np.int32), 'setup': (copy + 1).astype(np.int32),
      'replication': ds.replication[pick].astype(np.int32),
      'layout': np.asarray('ntu25'), 'normalize': np.asarray('agcn')}
  shape = (num_samples, NUM_PERSONS, num_frames, NUM_JOINTS, 3)
  tmp = path + '.partial'
  with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED, allowZip64=True) as z:
    with z.open('x.npy', 'w', force_zip64=True) as f:
      np.lib.format.write_array_header_1_0(
          f, {'descr': np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              'fortran_order': False, 'shape': shape})
      for lo in range(0, num_samples, CHUNK):
        hi = min(lo + CHUNK, num_samples)
        chunk = base_x[pick[lo:hi]]
        noise_rng = np.random.default_rng([seed, 11, lo])
        noise = noise_rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(COPY_NOISE)
        mask = valid_mask(chunk, small['lengths'][lo:hi])[..., None, None]
        # Copy 0 is the base set itself; later copies jitter every valid coordinate.
        noise *= (copy[lo:hi] > 0)[:, None, None, None, None]
        chunk = np.where(mask, chunk + noise, np.float32(0)).astype(np.float32)
        f.write(np.ascontiguousarray(chunk).tobytes())
    for key, value in small.items():
      _write_member(z, key, value)
  os.replace(tmp, path)
  return {'samples': num_samples, 'file_bytes': os.path.getsize(path),
          'train': int((small['split'] == 0).sum()), 'test': int((small['split'] == 1).sum())}


# ---------------------------------------------------------------- the run

def scale_config(path: str, *, retarget_first: bool = True, epochs: int = 1):
  """configs/default.py with tiny models (configs/demo.py's), one epoch everywhere, the file at
  `path` (gender privacy: the stored split holds subjects out), and evaluation trimmed to one of
  each kind: a noise level, the retargeting baseline, a retrained attacker per task, the fast
  attack suite. Classifiers read every 10th frame (classifiers.max_frames=30)."""
  import importlib.util

  import ml_collections
  spec = importlib.util.spec_from_file_location('scale_default_config',
                                                os.path.join(REPO, 'configs', 'default.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.data.path = path
  c.data.privacy_target = 'gender'
  tiny_stgcn = dict(base_channels=8, blocks_per_stage=(1, 1, 1), temporal_kernel=5, dropout=0.0)
  c.model_knobs = ml_collections.ConfigDict(dict(stgcn=tiny_stgcn))
  c.classifiers.max_frames = 30
  c.classifiers.action = ml_collections.ConfigDict(dict(arch='stgcn', seeds=[0]))
  c.classifiers.privacy = ml_collections.ConfigDict(dict(arch='stgcn', seeds=[100]))
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[], privacy=[]))
  c.evaluate.holdout_archs = ml_collections.ConfigDict(dict(action=[], privacy=[]))
  c.evaluate.retrained = ml_collections.ConfigDict(dict(action=['stgcn'], privacy=['stgcn']))
  c.evaluate.noise_sigmas = [0.01]
  c.evaluate.batch_size = 256
  c.evaluate.render_samples = [0]
  c.evaluate.gif = False
  for task in ('action', 'privacy'):
    c.pretrain[task].epochs = epochs
    c.pretrain[task].batch_size = 128
    c.pretrain[task].milestones = []
  c.anonymizer.retarget_first = retarget_first
  c.anonymizer.knobs = ml_collections.ConfigDict(dict(num_blocks=1, hidden=32))
  c.anonymize.epochs = epochs
  c.anonymize.batch_size = 128
  c.anonymize.milestones = []
  return c


def run_pipeline(config, workdir: str, sampler: PeakSampler) -> list[dict]:
  """pipeline.run's loop, one measured row per stage ('load' is make_run)."""
  from skeleton_anon.pipeline import make_run
  from skeleton_anon.pipeline.stages import STAGES
  rows = []
  sampler.take()
  start = time.time()
  sampler.stage = 'load'
  the_run = make_run(config, workdir)
  rows.append({'stage': 'load', 'seconds': round(time.time() - start, 2),
               'peak_anon_mib': round(sampler.take(), 1)})
  print(json.dumps(rows[-1]), flush=True)
  try:
    for name, stage in STAGES:
      start = time.time()
      sampler.stage = name
      stage(the_run)
      rows.append({'stage': name, 'seconds': round(time.time() - start, 2),
                   'peak_anon_mib': round(sampler.take(), 1)})
      print(json.dumps(rows[-1]), flush=True)
  finally:
    the_run.io.close()
  return rows


def _mem_total_gib() -> float:
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemTotal:'):
        return round(int(line.split()[1]) / 2**20, 1)
  return float('nan')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--json', required=True, help='where the JSON list of stages goes')
  parser.add_argument('--samples', type=int, default=NTU60_SAMPLES)
  parser.add_argument('--keep', action='store_true', help='leave the data file and workdir')
  parser.add_argument('--dir', default='', help='folder for the file and workdir '
                      '(default: a new temporary folder)')
  parser.add_argument('--no_retarget_first', action='store_true',
                      help='anonymizer.retarget_first off (default on: retargeting is measured)')
  parser.add_argument('--epochs', type=int, default=1)
  parser.add_argument('--max_anon_mib', type=float, default=0.0,
                      help='abort (exit 3) when RssAnon passes this (0: no limit)')
  parser.add_argument('--trace', default='', help='CSV of (seconds, stage, RssAnon MiB) '
                      'every 0.5 s')
  parser.add_argument('--make_file', default='', help=argparse.SUPPRESS)   # child process
  args = parser.parse_args(argv)
  if args.make_file:
    facts = write_ntu_sized(args.make_file, args.samples)
    print(json.dumps(facts))
    return 0
  root = args.dir or tempfile.mkdtemp(prefix='skeleton_anon_scale_')
  os.makedirs(root, exist_ok=True)
  path = os.path.join(root, f'ntu_sized_{args.samples}.npz')
  workdir = os.path.join(root, 'workdir')
  try:
    start = time.time()
    if not os.path.exists(path):
      out = subprocess.run([sys.executable, os.path.abspath(__file__), '--json', args.json,
                            '--samples', str(args.samples), '--make_file', path],
                           check=True, capture_output=True, text=True)
      facts = json.loads(out.stdout.strip().splitlines()[-1])
    else:
      facts = {'samples': args.samples, 'file_bytes': os.path.getsize(path), 'reused': True}
    make_seconds = round(time.time() - start, 2)
    print(json.dumps({'file': path, 'make_seconds': make_seconds, **facts}), flush=True)
    if os.path.exists(workdir):
      shutil.rmtree(workdir)
    sampler = PeakSampler(trace=args.trace, limit_mib=args.max_anon_mib)
    begin = time.time()
    try:
      rows = run_pipeline(scale_config(path, retarget_first=not args.no_retarget_first,
                                       epochs=args.epochs), workdir, sampler)
      total = {'stage': 'total', 'seconds': round(time.time() - begin, 2),
               'peak_anon_mib': round(sampler.overall, 1), 'samples': args.samples,
               'file_gib': round(facts['file_bytes'] / 2**30, 2), 'make_seconds': make_seconds,
               'machine': {'cpus': os.cpu_count(), 'mem_gib': _mem_total_gib(),
                           'platform': platform.platform()},
               'date': time.strftime('%Y-%m-%d')}
    finally:
      sampler.close()
    rows.append(total)
    print(json.dumps(total), flush=True)
    with open(args.json, 'w') as f:
      json.dump(rows, f, indent=1)
  finally:
    if not args.keep:
      if args.dir:
        for p in (path, workdir):
          if os.path.isdir(p):
            shutil.rmtree(p)
          elif os.path.exists(p):
            os.remove(p)
      else:
        shutil.rmtree(root, ignore_errors=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
