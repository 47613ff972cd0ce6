"""Workdir bookkeeping: the stored config and the markers of finished stages.

The workdir may be a local folder or a URL (gs://BUCKET/run): every path goes through
skeleton_anon.pathio (etils.epath). With several processes, process 0 decides: it reads the stored
config and the markers, and every process gets its answer (`from_process_0`), so all of them run
the same stages whatever their own disks hold; only process 0 writes.
"""

from __future__ import annotations

import datetime
import json

import jax

from skeleton_anon import pathio
from skeleton_anon.errors import ConfigError
from skeleton_anon.multihost import from_process_0

# Keys that may change between runs of one workdir without mixing two experiments.
_VOLATILE = ('allow_config_change', 'debug')


def flatten(tree, prefix=''):
  """{dotted key: leaf} of a nested dict."""
  out = {}
  for k, v in tree.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(flatten(v, key + '.'))
    else:
      out[key] = v
  return out


def changed_keys(old: dict, new: dict) -> list[str]:
  """Sorted dotted keys whose leaves differ between two nested dicts (present in one only too)."""
  a, b = flatten(old), flatten(new)
  return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def config_dict(config) -> dict:
  """The config as plain JSON data, without the keys that may change between runs."""
  data = json.loads(config.to_json_best_effort(sort_keys=True))
  return {k: v for k, v in data.items() if k not in _VOLATILE}


def _write_json(path, data) -> None:
  pathio.write_json(path, data, indent=2, sort_keys=True)


def _read_stored(workdir) -> dict | None:
  path = pathio.as_path(workdir) / 'config.json'
  return pathio.read_json(path) if path.exists() else None


def stored_config(workdir: str) -> dict | None:
  """The config a workdir stored (workdir/config.json), or None for a new workdir.

  Process 0's file: every process gets the same answer (a collective, see from_process_0).
  """
  return from_process_0(lambda: _read_stored(workdir))


def check_config(workdir: str, config) -> None:
  """Stores the config in workdir/config.json, or refuses one that differs from the stored one.

  A workdir holds one experiment; continuing it with other settings would mix checkpoints of two
  experiments, so that needs --config.allow_config_change=True (the new config is then stored).
  """
  path = pathio.as_path(workdir) / 'config.json'
  current = config_dict(config)
  stored = stored_config(workdir)   # process 0's, on every process
  if stored is not None:
    old, new = flatten(stored), flatten(current)
    changed = changed_keys(stored, current)
    if changed and not config.allow_config_change:
      shown = ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in changed[:3])
      more = f' (and {len(changed) - 3} more)' if len(changed) > 3 else ''
      raise ConfigError(
          f'{workdir} holds a run with another config ({shown}{more}); use a new --workdir or '
          f'pass --config.allow_config_change=True to continue it with the new settings')
    if not changed:
      return
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, current)


class StageMarkers:
  """workdir/stages/<name>.json exists once stage <name> finished (written last, atomically).

  `stamps` (stage -> {'fingerprint', 'settings'}, see fingerprints.py) is merged into the marker
  a stage writes, so a later run can tell whether the stage's inputs changed since.

  After `sync()` (what a pipeline run does), done/read/names answer from process 0's markers,
  held in memory and kept current by mark/remove on every process: all processes skip the same
  stages even when the others' disks hold other markers or none. Unsynced, they read the disk.
  Only process 0 writes or removes files.
  """

  def __init__(self, workdir: str):
    self.directory = pathio.as_path(workdir) / 'stages'
    self.stamps: dict[str, dict] = {}
    self._shared: dict[str, dict] | None = None

  def sync(self) -> 'StageMarkers':
    """Takes process 0's markers as the truth on every process (a collective); returns self."""
    self._shared = from_process_0(self._read_all)
    return self

  def _read_all(self) -> dict[str, dict]:
    return {name: pathio.read_json(self.path(name)) for name in self._names_on_disk()}

  def _names_on_disk(self) -> list[str]:
    if not self.directory.is_dir():
      return []
    return sorted(p.name[:-5] for p in self.directory.iterdir()
                  if p.name.endswith('.json') and not p.name.startswith('.'))

  def path(self, name: str):
    """workdir/stages/<name>.json (an epath.Path)."""
    return self.directory / f'{name}.json'

  def done(self, name: str) -> bool:
    if self._shared is not None:
      return name in self._shared
    return self.path(name).exists()

  def read(self, name: str) -> dict | None:
    """The marker's content, or None when the stage has not finished."""
    if self._shared is not None:
      return self._shared.get(name)
    if not self.done(name):
      return None
    return pathio.read_json(self.path(name))

  def names(self) -> list[str]:
    """Every marker present."""
    if self._shared is not None:
      return sorted(self._shared)
    return self._names_on_disk()

  def remove(self, name: str) -> None:
    """Forgets the marker on every process (call it on all); process 0 deletes the file."""
    if self._shared is not None:
      self._shared.pop(name, None)
    if jax.process_index() == 0:
      self.path(name).unlink(missing_ok=True)

  def mark(self, name: str, info: dict | None = None) -> None:
    """Records stage `name` as finished (call it on all processes); process 0 writes the file."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    content = {'finished': stamp, **self.stamps.get(name, {}), **(info or {})}
    if self._shared is not None:
      self._shared[name] = json.loads(json.dumps(content))   # as a later read would give it
    if jax.process_index() != 0:
      return
    self.directory.mkdir(parents=True, exist_ok=True)
    _write_json(self.path(name), content)
