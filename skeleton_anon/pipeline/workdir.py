"""Workdir bookkeeping: the stored config and the markers of finished stages."""

from __future__ import annotations

import datetime
import json
import os

import jax

from skeleton_anon.data.dataset import atomic_write
from skeleton_anon.errors import ConfigError

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


def _write_json(path: str, data) -> None:
  def write(tmp):
    with open(tmp, 'w') as f:
      json.dump(data, f, indent=2, sort_keys=True)
  atomic_write(path, write, overwrite=True)


def stored_config(workdir: str) -> dict | None:
  """The config a workdir stored (workdir/config.json), or None for a new workdir."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_config(workdir: str, config) -> None:
  """Stores the config in workdir/config.json, or refuses one that differs from the stored one.

  A workdir holds one experiment; continuing it with other settings would mix checkpoints of two
  experiments, so that needs --config.allow_config_change=True (the new config is then stored).
  """
  path = os.path.join(workdir, 'config.json')
  current = config_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
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
    os.makedirs(workdir, exist_ok=True)
    _write_json(path, current)


class StageMarkers:
  """workdir/stages/<name>.json exists once stage <name> finished (written last, atomically).

  `stamps` (stage -> {'fingerprint', 'settings'}, see fingerprints.py) is merged into the marker
  a stage writes, so a later run can tell whether the stage's inputs changed since.
  """

  def __init__(self, workdir: str):
    self.directory = os.path.join(workdir, 'stages')
    self.stamps: dict[str, dict] = {}

  def path(self, name: str) -> str:
    return os.path.join(self.directory, f'{name}.json')

  def done(self, name: str) -> bool:
    return os.path.exists(self.path(name))

  def read(self, name: str) -> dict | None:
    """The marker's content, or None when the stage has not finished."""
    if not self.done(name):
      return None
    with open(self.path(name)) as f:
      return json.load(f)

  def names(self) -> list[str]:
    """Every marker present."""
    if not os.path.isdir(self.directory):
      return []
    return sorted(f[:-5] for f in os.listdir(self.directory) if f.endswith('.json'))

  def remove(self, name: str) -> None:
    if jax.process_index() == 0 and self.done(name):
      os.remove(self.path(name))

  def mark(self, name: str, info: dict | None = None) -> None:
    if jax.process_index() != 0:
      return
    os.makedirs(self.directory, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    _write_json(self.path(name), {'finished': stamp, **self.stamps.get(name, {}),
                                  **(info or {})})
