"""Stage fingerprints: which stages of a continued workdir are stale, and what each one ran with.

The stages form a small graph (pretrain -> anonymize -> evaluate, anonymize -> export). A stage's
fingerprint is a digest of the config sections it reads, the input files (path, size,
modification time) for pretrain, and the fingerprints of the stages it builds on. A finished
stage's marker stores its fingerprint and the settings it ran with; when a workdir is continued
with `allow_config_change=True`, every stage whose fingerprint differs is rerun, and with it
everything downstream (its upstream fingerprint changed too): a longer `anonymize.epochs`
re-evaluates and re-exports, and the attackers retrained in evaluation are tied to the
anonymizer they attacked (their checkpoints are named by the anonymize fingerprint).

A stale training stage keeps its checkpoints when the only change among its own settings is a
larger number of epochs (training continues where it stopped); otherwise its checkpoints are
removed so nothing of the old settings is restored.

The checkpoint root may be a URL (gs://...): removal goes through skeleton_anon.pathio. With
several processes every process judges the same markers (process 0's, StageMarkers.sync) and the
same input files (process 0's listing, see pipeline.context), so all of them rerun the same
stages; only process 0 removes files.
"""

from __future__ import annotations

import hashlib
import json
import os

from absl import logging

from skeleton_anon import pathio
from skeleton_anon.pipeline.workdir import changed_keys, flatten

# stage -> (config sections it reads, stages it builds on). Dotted names select sub-keys.
STAGE_INPUTS = {
    'pretrain': (('seed', 'data', 'classifiers', 'model_knobs', 'pretrain',
                  'evaluate.holdout_seeds', 'evaluate.holdout_archs',
                  'evaluate.holdout_arch_seeds'), ()),
    'anonymize': (('anonymizer', 'anonymize'), ('pretrain',)),
    'evaluate': (('evaluate',), ('anonymize',)),
    'export': (('export',), ('anonymize',)),
}
# Keys (anywhere in a section) that change when results are saved or logged, never the results:
# changing them does not make a stage stale.
BOOKKEEPING = ('checkpoint_every', 'log_every')
# Checkpoint folders (workdir/checkpoints/<name>) each stage owns; pretrain owns the rest.
_ANONYMIZE_CHECKPOINTS = ('anonymizer_pretrain', 'anonymize')
_EVALUATE_PREFIX = 'retrained_'


def _lookup(config: dict, dotted: str):
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, dict) or part not in node:
      return None
    node = node[part]
  return node


def input_files_digest(paths) -> list:
  """[(real path, size, mtime_ns)] of the files a run reads: a changed file changes pretrain.

  Local files only: a URL (gs://...) is left out rather than looked up.
  """
  out = []
  for path in paths:
    if not pathio.is_url(path) and os.path.isfile(path):
      stat = os.stat(path)
      out.append([os.path.realpath(path), stat.st_size, stat.st_mtime_ns])
  return out


def _without_bookkeeping(node):
  """The config tree without keys that say how often to save or log, not what to compute."""
  if not isinstance(node, dict):
    return node
  return {k: _without_bookkeeping(v) for k, v in node.items() if k not in BOOKKEEPING}


def stage_settings(config: dict, stage: str) -> dict:
  """{dotted section: value} of the config sections `stage` reads (without BOOKKEEPING keys)."""
  return {name: _without_bookkeeping(_lookup(config, name)) for name in STAGE_INPUTS[stage][0]}


def fingerprints(config: dict, data_files: list) -> dict[str, str]:
  """{stage: 16-hex digest} for a config (as a plain dict) and `input_files_digest`."""
  out = {}
  for stage, (_, upstream) in STAGE_INPUTS.items():
    payload = {'settings': stage_settings(config, stage),
               'upstream': {u: out[u] for u in upstream}}
    if stage == 'pretrain':
      payload['data_files'] = data_files
    text = json.dumps(payload, sort_keys=True, default=str)
    out[stage] = hashlib.sha256(text.encode()).hexdigest()[:16]
  return out


def _only_epochs_grew(old: dict, new: dict) -> bool:
  """True when the only differences between two settings dicts are larger `epochs` values."""
  a, b = flatten(old), flatten(new)
  changed = changed_keys(old, new)
  return bool(changed) and all(
      k.rsplit('.', 1)[-1] == 'epochs' and isinstance(a.get(k), int) and
      isinstance(b.get(k), int) and b[k] > a[k] for k in changed)


def _owner(checkpoint: str) -> str:
  if checkpoint in _ANONYMIZE_CHECKPOINTS:
    return 'anonymize'
  if checkpoint.startswith(_EVALUATE_PREFIX):
    return 'evaluate'
  return 'pretrain'


def invalidate_stale(markers, checkpoint_root: str, config: dict, prints: dict[str, str],
                     *, previous: dict | None = None, data_files: list = (),
                     writer: bool = True) -> list[str]:
  """Removes the markers (and, unless only epochs grew, the checkpoints) of every finished
  stage whose stored fingerprint differs from `prints`; returns the stale stages in order.

  A marker without a fingerprint (a workdir from before fingerprints) is judged by `previous`,
  the config the workdir stored before this run (same input files assumed); without one it is
  taken as current. Bank markers ('bank_*') belong to pretrain. Call it on every process with
  the same markers: each forgets the stale ones, process 0 deletes their files
  (StageMarkers.remove) and only the writer removes checkpoints.
  """
  legacy = fingerprints(previous, list(data_files)) if previous is not None else None
  stale = []
  for stage in STAGE_INPUTS:
    info = markers.read(stage)
    if info is None:
      continue
    stored = info.get('fingerprint') or (legacy or {}).get(stage)
    if stored in (None, prints[stage]):
      continue
    stale.append(stage)
    ran_with = info.get('settings') or (stage_settings(previous, stage) if previous else {})
    keep = _only_epochs_grew(ran_with, stage_settings(config, stage))
    logging.info('%s: inputs changed since it ran (%s); rerunning it%s', stage,
                 ', '.join(changed_keys(ran_with, stage_settings(config, stage))[:4])
                 or ('its input files changed (path, size or modification time)'
                     if not STAGE_INPUTS[stage][1] else 'an upstream stage changed'),
                 ' from its last checkpoint' if keep else ' from scratch')
    names = [stage] + ([n for n in markers.names() if n.startswith('bank_')]
                       if stage == 'pretrain' else [])
    if stage == 'anonymize':
      names.append('anonymizer_pretrain')
    for name in names:
      markers.remove(name)     # files: on process 0 only (StageMarkers.remove)
    if not writer or keep:
      continue
    root = pathio.as_path(checkpoint_root)
    if root.is_dir():
      for checkpoint in list(root.iterdir()):
        if _owner(checkpoint.name) == stage:
          try:
            checkpoint.rmtree(missing_ok=True)
          except OSError as e:
            logging.warning('%s: could not remove %s (%s)', stage, checkpoint, e)
  return stale
