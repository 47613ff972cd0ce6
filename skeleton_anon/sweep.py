"""python -m skeleton_anon.sweep --config=configs/SWEEP.py --workdir=DIR [--config.a.b=value ...]

Runs the pipeline once per sweep point into DIR/<point> and gathers one plot across the runs
(DIR/sweep.png, plus DIR/sweep.json listing each point's settings and workdir).

A sweep config is an ordinary pipeline config with a `sweep` section:
  parameters: dotted config keys, e.g. ['anonymize.alpha', 'anonymize.beta'];
  points: one list of values per point, in the order of `parameters`;
  names: one directory name per point (empty: derived from the values);
  share_pretrained: reuse the first run's pretrained classifiers where a point trains the same ones;
  title: the plot's title.
`--config.x=y` overrides change the base config, so they apply to every point.

Sharing: the pretrain stage resumes classifier banks from workdir/checkpoints/<name>, and a
checkpoint that already holds its last step is reloaded, not retrained. When a point would train
exactly the same banks into a directory as the first point did (same banks, seeds, data,
pretraining settings, model knobs and seed), it gets a copy of the first point's directory, so the
result is exactly what retraining would give. The same holds for the auto-encoder's reconstruction
pretraining. Directories that differ are trained in their own run: in the ensemble-size sweep the
engine trains the holdout seeds in one bank with the 1, 2 or 3 trained-against seeds, so nothing
is shared there. Attackers retrained on anonymized data are never shared.

DIR may be a URL (gs://BUCKET/sweep): every path goes through skeleton_anon.pathio (etils.epath).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import sys
from typing import Any, Callable, Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from skeleton_anon import cli, pathio
from skeleton_anon.errors import ConfigError, SkeletonAnonError

SWEEP_KEY = 'sweep'
PLOT_NAME = 'sweep.png'
SUMMARY_NAME = 'sweep.json'


@dataclasses.dataclass
class SweepPoint:
  """One run of a sweep: its directory name, the values it sets, and its full config."""
  name: str
  overrides: dict[str, Any]
  config: Any


def _set_key(config, dotted: str, value) -> None:
  """config.<dotted> = value, refusing unknown keys and values of another type, naming the key."""
  *path, last = dotted.split('.')
  section = config
  for part in path:
    if part not in section:
      raise ConfigError(f'sweep parameter {dotted!r}: config has no section {part!r}')
    section = section[part]
  if last not in section:
    raise ConfigError(f'sweep parameter {dotted!r}: config has no key {last!r}')
  try:
    setattr(section, last, value)
  except TypeError as e:
    raise ConfigError(f'sweep parameter {dotted!r}: {" ".join(str(e).split())}') from None


def _default_name(overrides: dict[str, Any]) -> str:
  parts = []
  for key, value in overrides.items():
    if isinstance(value, (list, tuple)):
      value = '-'.join(str(v) for v in value)
    parts.append(f'{key.split(".")[-1]}{value:g}' if isinstance(value, float)
                 else f'{key.split(".")[-1]}{value}')
  return '_'.join(parts)


def sweep_points(config) -> list[SweepPoint]:
  """The points of config.sweep, each with a copy of `config` (minus `sweep`) and its values set.

  Raises ConfigError for a config without a sweep section, a point with the wrong number of
  values, an unknown key, a value of the wrong type, or names that are not unique directory names.
  """
  if SWEEP_KEY not in config:
    raise ConfigError('the config has no `sweep` section (parameters, points, names); run it with '
                      'python -m skeleton_anon.main instead')
  spec = config[SWEEP_KEY]
  parameters = [str(p) for p in spec.parameters]
  points = [list(p) for p in spec.points]
  names = [str(n) for n in spec.get('names', [])]
  if not parameters or not points:
    raise ConfigError('sweep.parameters and sweep.points must both be non-empty')
  if names and len(names) != len(points):
    raise ConfigError(f'sweep.names has {len(names)} entries for {len(points)} points')
  base = copy.deepcopy(config)
  with base.unlocked():
    del base[SWEEP_KEY]
  result = []
  for i, values in enumerate(points):
    if len(values) != len(parameters):
      raise ConfigError(f'sweep point {i} has {len(values)} values for {len(parameters)} '
                        f'parameters {parameters}')
    overrides = dict(zip(parameters, values))
    point_config = copy.deepcopy(base)
    for key, value in overrides.items():
      _set_key(point_config, key, value)
    name = names[i] if names else _default_name(overrides)
    if not name or name in ('.', '..') or os.sep in name:
      raise ConfigError(f'sweep point {i}: {name!r} is not a usable directory name')
    result.append(SweepPoint(name, overrides, point_config))
  duplicated = sorted({p.name for p in result if [q.name for q in result].count(p.name) > 1})
  if duplicated:
    raise ConfigError(f'sweep point names must be unique; repeated: {duplicated}')
  return result


def _plain(section) -> Any:
  return section.to_dict() if hasattr(section, 'to_dict') else section


def _pretrain_checkpoints(config) -> dict[str, tuple]:
  """Checkpoint directory name -> the bank specs trained into it by the pretrain stage.

  The engine trains banks of one task and architecture together in one directory, named after
  the first (pipeline.stages.training_groups).
  """
  from skeleton_anon.pipeline import stages
  groups = stages.training_groups(stages.bank_specs(config))
  return {name: tuple(members) for name, _, _, members in groups}


def shareable_stages(source, target) -> list[str]:
  """Checkpoint directories (under checkpoints/) that a run of `target` may take from `source`.

  A pretraining directory qualifies when both configs train exactly the same banks into it (names,
  architecture, seeds, task, role) from the same data and seed, with the same pretraining settings
  of its task and knobs of its architecture. The auto-encoder's reconstruction pretraining
  qualifies when the anonymizer section, data and seed agree.
  """
  if _plain(source.data) != _plain(target.data) or source.seed != target.seed:
    return []
  source_dirs = _pretrain_checkpoints(source)
  shared = []
  for name, members in _pretrain_checkpoints(target).items():
    _, task, _, arch, _ = members[0]
    if (source_dirs.get(name) == members
        and _plain(source.pretrain[task]) == _plain(target.pretrain[task])
        and _plain(source.model_knobs.get(arch)) == _plain(target.model_knobs.get(arch))):
      shared.append(name)
  if (target.anonymizer.pretrain.epochs > 0
      and _plain(source.anonymizer) == _plain(target.anonymizer)):
    shared.append('anonymizer_pretrain')
  return shared


def copy_checkpoints(source_dir: str, target_dir: str, names: Sequence[str]) -> list[str]:
  """Copies checkpoints/<name> from one workdir to another where the target has none yet.

  Copies rather than links: the target's checkpoint manager owns its directory (it may prune old
  steps), and must never touch the source run. Returns the names actually copied.
  """
  copied = []
  for name in names:
    src = pathio.as_path(source_dir) / 'checkpoints' / name
    dst = pathio.as_path(target_dir) / 'checkpoints' / name
    if not src.is_dir() or dst.exists():
      continue
    tmp = dst.parent / f'{name}.copying'
    if tmp.exists():
      tmp.rmtree()
    if pathio.is_url(src) or pathio.is_url(tmp):
      pathio.copy_tree(src, tmp)
    else:
      shutil.copytree(src, tmp)
    tmp.rename(dst)
    copied.append(name)
  return copied


def _barrier(name: str) -> None:
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def _write_json(path, data) -> None:
  pathio.write_json(path, data, indent=2)


def _point_dir(workdir, name: str) -> str:
  """workdir/<name>: a plain join for a local workdir (as given), epath's for a URL."""
  if pathio.is_url(workdir):
    return str(pathio.as_path(workdir) / name)
  return os.path.join(workdir, name)


def gather_plot(workdir: str, points: Sequence[SweepPoint], title: str) -> str | None:
  """Writes workdir/sweep.png from the points' report.json files; None when a report is missing."""
  from skeleton_anon.evaluate.plots import plot_sweep
  from skeleton_anon.evaluate.report import load_report
  paths = [pathio.as_path(_point_dir(workdir, p.name)) / 'report.json' for p in points]
  missing = [p for p in paths if not p.exists()]
  if missing:
    logging.warning('sweep: no plot, %d runs lack report.json (first: %s)', len(missing),
                    missing[0])
    return None
  reports = []
  for path in paths:
    with pathio.local_file(path) as local:
      reports.append(load_report(local))
  with pathio.local_dir(workdir) as out_dir:
    plot = plot_sweep(reports, [p.name for p in points], os.path.join(out_dir, PLOT_NAME),
                      title=title)
  return str(pathio.as_path(workdir) / PLOT_NAME) if pathio.is_url(workdir) else plot


def run_sweep(config, workdir: str, *, run_fn: Callable | None = None, mesh=None) -> dict:
  """Runs (or resumes) every point of config.sweep under workdir/<name>; returns the summary.

  run_fn(config, workdir, mesh=...) runs one point (default: the full pipeline,
  skeleton_anon.pipeline.run). Finished points are skipped stage by stage, as in main.
  """
  import jax
  if run_fn is None:
    from skeleton_anon import pipeline
    run_fn = pipeline.run
  points = sweep_points(config)
  spec = config[SWEEP_KEY]
  share = bool(spec.get('share_pretrained', True))
  first_dir = _point_dir(workdir, points[0].name)
  summary = {'title': str(spec.get('title', 'sweep')), 'parameters': list(spec.parameters),
             'points': []}
  for index, point in enumerate(points):
    point_dir = _point_dir(workdir, point.name)
    reused = []
    if share and index > 0:
      names = shareable_stages(points[0].config, point.config)
      if jax.process_index() == 0:
        reused = copy_checkpoints(first_dir, point_dir, names)
      _barrier(f'sweep_copy_{point.name}')
      if reused:
        logging.info('sweep %s: reusing pretrained %s from %s', point.name, ', '.join(reused),
                     points[0].name)
    logging.info('sweep point %d/%d: %s (%s)', index + 1, len(points), point.name,
                 point.overrides)
    run_fn(point.config, point_dir, mesh=mesh)
    summary['points'].append({'name': point.name, 'workdir': point_dir,
                              'overrides': point.overrides, 'reused_pretrained': reused})
  if jax.process_index() == 0:
    summary['plot'] = gather_plot(workdir, points, summary['title'])
    _write_json(pathio.as_path(workdir) / SUMMARY_NAME, summary)
  return summary


# ---------------------------------------------------------------- command line

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Sweep config (configs/*_sweep.py).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory holding one workdir per sweep point.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', os.environ.get('SKELETON_ANON_DISTRIBUTED', '') == '1',
    'Call jax.distributed.initialize() before anything touches the devices.')
_COORDINATOR = flags.DEFINE_string('coordinator', None, 'host:port of process 0 (optional).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Process count (optional).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process index (optional).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  jax = cli.initialize_jax(distributed=_DISTRIBUTED.value, coordinator=_COORDINATOR.value,
                           num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  from skeleton_anon.train import loop
  try:
    summary = run_sweep(_CONFIG.value, _WORKDIR.value)
  except loop.StopRequested as e:
    print(f'stopped: {e}', file=sys.stderr)
    return
  except SkeletonAnonError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  if jax.process_index() == 0:
    print(f'{len(summary["points"])} runs in {_WORKDIR.value}; plot: {summary.get("plot")}')


def run():
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
