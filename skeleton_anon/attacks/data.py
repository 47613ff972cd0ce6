"""What an attack is fitted and scored on, and the split that fits the question asked.

Re-identification is closed-set: the same people on both sides, different sequences (an
attacker cannot name someone it never saw). Gender is asked across people by default (no test
person in training), so a gender attacker cannot answer by recognising the person; a closed-set
gender split is used only on request. A split that cannot answer the question (one side empty,
one class, labels missing, unseen test people for re-identification) is refused in one line.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from skeleton_anon.data import splits
from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.errors import ConfigError, DataError

PRIVACY_TARGETS = ('subject', 'gender')


@dataclasses.dataclass
class AttackData:
  """One side (train or test) of an attack: coordinates and the labels attackers may learn.

  x: float32 [N, M, T, V, C]; lengths: int [N]; privacy: int [N] (subject ids or gender, >= 0);
  action: int [N] or None; subject: int [N] or None (the linkage attack pairs sequences by it);
  names: str [N] or None.
  """
  x: np.ndarray
  lengths: np.ndarray
  privacy: np.ndarray
  action: np.ndarray | None = None
  subject: np.ndarray | None = None
  names: np.ndarray | None = None

  def __len__(self) -> int:
    return int(self.x.shape[0])

  def labels(self, task: str) -> np.ndarray | None:
    """The labels of `task` ('privacy', 'action' or 'subject')."""
    return getattr(self, task)

  @classmethod
  def from_dataset(cls, ds: SkeletonDataset, privacy_target: str) -> 'AttackData':
    return cls(x=ds.x, lengths=ds.lengths, privacy=ds.privacy_labels(privacy_target),
               action=ds.action, subject=ds.subject, names=ds.names)


def _known_labels(ds: SkeletonDataset, privacy_target: str, path) -> SkeletonDataset:
  """The samples whose target label is known (>= 0); an error when none is."""
  if privacy_target not in PRIVACY_TARGETS:
    raise DataError(path, f'unknown privacy_target {privacy_target!r}; use one of '
                    f'{PRIVACY_TARGETS}')
  try:
    labels = ds.privacy_labels(privacy_target)
  except DataError as e:                       # named after this file, not the in-memory one
    raise DataError(path, e.problem, key=e.key) from None
  known = labels >= 0
  if not known.any():
    raise DataError(path, f'no sample has a known {privacy_target} label', key=privacy_target)
  return ds if known.all() else ds.subset(known)


def _across_people(ds: SkeletonDataset, split: np.ndarray) -> bool:
  return not np.intersect1d(ds.subject[split == 0], ds.subject[split == 1]).size


def _resolve_rule(ds: SkeletonDataset, privacy_target: str, rule: str | None) -> str:
  """The rule a split request means. Default: the file's split when it fits the question, else
  a closed-set rule for re-identification and held-out people (`by_subject`) for gender."""
  if rule not in (None, '', 'default', 'auto'):
    return rule
  if ds.split is not None and (privacy_target == 'subject' or
                               _across_people(ds, np.asarray(ds.split))):
    return 'file'
  if privacy_target == 'gender':
    return 'by_subject'
  return 'leakage_safe' if ds.replication is not None else 'random'


def attack_split(ds: SkeletonDataset, privacy_target: str, rule: str | None = None, *,
                 seed: int = 0, test_fraction: float = 0.2, path=None
                 ) -> tuple[AttackData, AttackData, dict]:
  """(train, test, split description) for an audit of `privacy_target` on `ds`.

  Samples with an unknown target label are dropped first. The description is audit.json's
  `split`: rule, num_train, num_test, across_people (no person on both sides), dropped_unknown.
  Raises DataError (one line, naming `path`) when the split cannot answer the question.
  """
  path = path if path is not None else ds.meta.get('path')
  kept = _known_labels(ds, privacy_target, path)
  rule = _resolve_rule(kept, privacy_target, rule)
  try:
    split = splits.make_split(kept, rule, seed=seed, test_fraction=test_fraction,
                              privacy_target=privacy_target)
  except ConfigError as e:
    raise DataError(path, f'split: {e}', key='split') from None
  split = np.asarray(split)
  train, test = kept.subset(split == 0), kept.subset(split == 1)
  check_split(train.privacy_labels(privacy_target), test.privacy_labels(privacy_target),
              privacy_target, path=path)
  info = {'rule': rule, 'num_train': train.num_samples, 'num_test': test.num_samples,
          'across_people': _across_people(kept, split),
          'dropped_unknown': ds.num_samples - kept.num_samples}
  return (AttackData.from_dataset(train, privacy_target),
          AttackData.from_dataset(test, privacy_target), info)


def check_split(train_labels: np.ndarray, test_labels: np.ndarray, privacy_target: str, *,
                path=None) -> None:
  """DataError when the train/test labels cannot measure `privacy_target` leakage."""
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  if train_labels.size == 0 or test_labels.size == 0:
    raise DataError(path, f'the split leaves {train_labels.size} training and '
                    f'{test_labels.size} test samples; both must be non-empty', key='split')
  for side, labels in (('training', train_labels), ('test', test_labels)):
    classes = np.unique(labels)
    # One test person is a fine re-identification test; one gender on either side is not.
    if len(classes) < 2 and (side == 'training' or privacy_target == 'gender'):
      raise DataError(path, f'the {side} side has a single {privacy_target} '
                      f'({int(classes[0])}); an attacker needs at least two classes',
                      key=privacy_target)
  if privacy_target == 'subject':
    try:
      splits.check_identity_split(train_labels, test_labels)
    except ConfigError as e:
      raise DataError(path, str(e), key='split') from None
