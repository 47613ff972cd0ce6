r"""What the readers of per-sequence keypoint folders share (data/openpose.py, data/mediapipe.py).

Subject and action come from each sequence's name (its path below the input folder, without
the extension) by a user's `formats.NamePattern`
(`--name_pattern='P(?P<subject>\d+)_A(?P<action>\d+)'`), or, without one, from NTU/ETRI-style
names (`P###`, `A###`). Without an action every sample is action 0 (a privacy-only run). Every
bad file stops with one line naming it (or, with on_error='skip', is left out and listed).
"""

from __future__ import annotations

import json
import os

import numpy as np

from skeleton_anon.data import collect
from skeleton_anon.data.dataset import SkeletonDataset, validate
from skeleton_anon.data.formats import NamePattern
from skeleton_anon.data.ntu import parse_sample_name
from skeleton_anon.errors import DataError


def read_json(path):
  try:
    with open(path, 'rb') as f:
      return json.loads(f.read())
  except (OSError, ValueError) as e:
    raise DataError(path, f'not a readable JSON file ({e})') from None


def labels_from_names(names, pattern: NamePattern | None, path) -> dict[str, np.ndarray]:
  """subject, action (0 when no name carries one) and whatever else the names give."""
  if pattern is not None:
    parsed = [pattern.parse(n, path, i) for i, n in enumerate(names)]
  else:
    parsed = []
    for i, n in enumerate(names):
      f = parse_sample_name(n)
      if 'performer' not in f:
        raise DataError(path, 'name carries no performer id (P###); give --name_pattern with '
                        'a (?P<subject>...) group', sample=i, name=n)
      parsed.append({'subject': f['performer'] - 1,
                     **({'action': f['action'] - 1} if 'action' in f else {}),
                     **{k: f[k] for k in ('camera', 'setup', 'replication') if k in f}})
  out = {}
  for key in ('subject', 'action', 'gender', 'camera', 'setup', 'replication'):
    if all(key in f for f in parsed):
      out[key] = np.asarray([f[key] for f in parsed], np.int32)
  if 'action' not in out:
    out['action'] = np.zeros(len(names), np.int32)
  return out


def matching(items, pattern: NamePattern | None, on_error: str, folder):
  """The items whose names the pattern matches, and Skipped entries for the others."""
  if pattern is None:
    return items, []
  pattern.check_any([name for name, _ in items], folder)
  kept, skipped = [], []
  for name, value in items:
    if pattern.matches(name):
      kept.append((name, value))
    elif on_error == 'skip':
      skipped.append(collect.Skipped(name, f'does not match --name_pattern {pattern.pattern!r}'))
    else:
      raise DataError(folder, f'name does not match --name_pattern {pattern.pattern!r}',
                      name=name)
  return kept, skipped


def dataset_from(gathered: collect.Gathered, skipped, *, layout: str, pattern, folder, source: str,
            img_shape, note: str | None = None) -> SkeletonDataset:
  buf = gathered.buffer
  try:
    if not gathered.names:
      raise DataError(folder, 'no sequence could be read')
    x, lengths = buf.arrays()
    labels = labels_from_names(gathered.names, pattern, folder)
    n = len(gathered.names)
    ds = SkeletonDataset(
        x=x, lengths=np.maximum(lengths, 1), layout=layout, names=np.asarray(gathered.names),
        score=buf.scores(),
        img_shape=None if img_shape is None else np.tile(np.int32(img_shape), (n, 1)),
        **labels)
    notes = [] if note is None else [note]
    if not labels['action'].any() and (pattern is None or 'action' not in pattern.fields):
      notes.append('the names carry no action: every sample is action 0 (a privacy-only run)')
    ds.meta.update(source=source, path=os.fspath(folder), skipped=skipped + gathered.skipped,
                   cropped=buf.cropped, buffer=buf, notes=notes)
    return validate(ds, folder)
  except BaseException:
    buf.close()
    raise


def longest(counts) -> int:
  return max(1, max(counts))
