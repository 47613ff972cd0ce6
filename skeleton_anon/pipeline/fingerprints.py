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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from absl import logging

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
  """[(real path, size, mtime_ns)] of the files a run reads: a changed file changes pretrain."""
  out = []
  for path in paths:
    if os.path.isfile(path):
      stat = os.stat(path)
      out.append([os.path.realpath(path), stat.st_size, stat.st_mtime_ns])
  return out


def stage_settings(config: dict, stage: str) -> dict:
  """{dotted section: value} of the config sections `stage` reads."""
  return {name: _lookup(config, name) for name in STAGE_INPUTS[stage][0]}


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
  taken as current. Bank markers ('bank_*') belong to pretrain. Only the writer (process 0)
  touches files.
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
                 or 'an upstream stage changed',
                 ' from its last checkpoint' if keep else ' from scratch')
    if not writer:
      continue
    names = [stage] + ([n for n in markers.names() if n.startswith('bank_')]
                       if stage == 'pretrain' else [])
    if stage == 'anonymize':
      names.append('anonymizer_pretrain')
    for name in names:
      markers.remove(name)
    if not keep and os.path.isdir(checkpoint_root):
      for checkpoint in os.listdir(checkpoint_root):
        if _owner(checkpoint) == stage:
          shutil.rmtree(os.path.join(checkpoint_root, checkpoint), ignore_errors=True)
  return stale
