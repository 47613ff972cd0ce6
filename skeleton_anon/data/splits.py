"""Train/test splits: the file's own, NTU's official ones, leakage-safe, and by subject.

`make_split(ds, rule)` returns int8 [N] (0 train, 1 test). Rules:
  file          the dataset's `split` array (an error if it has none).
  ntu_xsub      NTU cross-subject: the official training performers (NTU60's 20, extended by
                NTU120's list; performers 41-106 only occur in NTU120).
  ntu_xview     NTU cross-view: cameras 2 and 3 train, camera 1 tests.
  ntu_xset      NTU120 cross-setup: even setup numbers train.
  leakage_safe  train when (action % 2) == ((subject - replication) % 2): the three cameras
                of one performance land on the same side, so a re-identification test never
                sees a view of a performance it trained on (expose-erase's rule). Every
                subject still has actions on both sides.
  by_subject    hold out a `test_fraction` of subjects, seeded, stratified by gender when the
                dataset has one (ETRI's gender protocol; not usable for identity tasks).
  random        per-sample split stratified by subject: every subject with two or more samples
                is on both sides (for identity tasks on data without recording fields).
  last_per_subject  each subject's last sample in file order tests (e.g. KGBD's last walk),
                the earlier ones train: re-identification across recording sessions.
  auto          `file` if the dataset has a split; else `leakage_safe` if the names gave
                replication numbers (NTU-style data); else `by_subject` for a gender task;
                else `random`.
Identity tasks need every test subject in training: see `check_identity_split`.
"""

from __future__ import annotations

import numpy as np

from skeleton_anon.data.dataset import SkeletonDataset
from skeleton_anon.errors import ConfigError

# Official NTU RGB+D 120 cross-subject training performers (1-based, as in the file names);
# the first 20 are NTU60's list (Shahroudy et al. 2016, Liu et al. 2019).
NTU_XSUB_TRAIN = frozenset({
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49,
    50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103})
NTU_XVIEW_TRAIN_CAMERAS = frozenset({2, 3})

RULES = ('file', 'ntu_xsub', 'ntu_xview', 'ntu_xset', 'leakage_safe', 'by_subject', 'random',
         'last_per_subject', 'auto')


def _needs(ds: SkeletonDataset, rule: str, *keys: str) -> None:
  absent = [k for k in keys if getattr(ds, k) is None]
  if absent:
    raise ConfigError(f'split rule {rule!r} needs per-sample {", ".join(absent)} (parsed from '
                      'NTU-style names SsssCcccPpppRrrrAaaa); this dataset has none')


def make_split(ds: SkeletonDataset, rule: str, *, seed: int = 0, test_fraction: float = 0.2,
               privacy_target: str | None = None) -> np.ndarray:
  """int8 [N], 0 train / 1 test, by `rule` (see the module docstring)."""
  if rule not in RULES:
    raise ConfigError(f'unknown split rule {rule!r}; use one of {RULES}')
  if rule == 'auto':
    if ds.split is not None:
      rule = 'file'
    elif ds.replication is not None:
      rule = 'leakage_safe'
    elif privacy_target == 'gender':
      rule = 'by_subject'
    else:
      rule = 'random'
  performer = ds.subject.astype(np.int64) + 1                   # 1-based, as in the names
  if rule == 'file':
    if ds.split is None:
      raise ConfigError("split rule 'file' needs a 'split' array in the dataset file")
    test = ds.split.astype(bool)
  elif rule == 'ntu_xsub':
    test = ~np.isin(performer, sorted(NTU_XSUB_TRAIN))
  elif rule == 'ntu_xview':
    _needs(ds, rule, 'camera')
    test = ~np.isin(ds.camera, sorted(NTU_XVIEW_TRAIN_CAMERAS))
  elif rule == 'ntu_xset':
    _needs(ds, rule, 'setup')
    test = ds.setup % 2 == 1
  elif rule == 'leakage_safe':
    _needs(ds, rule, 'replication')
    # Parity is unchanged by the 0-based shift when action and subject shift together.
    test = (ds.action % 2) != ((ds.subject.astype(np.int64) - ds.replication) % 2)
  elif rule == 'by_subject':
    test = np.isin(ds.subject, held_out_subjects(ds, seed=seed, test_fraction=test_fraction))
  elif rule == 'last_per_subject':
    # Closed-set re-identification across sessions: a subject's last recording (file order)
    # tests, the earlier ones train; subjects with one recording stay in train.
    test = np.zeros(ds.num_samples, bool)
    for subject in np.unique(ds.subject):
      members = np.flatnonzero(ds.subject == subject)
      if len(members) > 1:
        test[members[-1]] = True
  else:
    test = _random_within_subjects(ds.subject, seed, test_fraction)
  split = test.astype(np.int8)
  if split.min() == split.max():
    side = 'test' if split[0] else 'train'
    raise ConfigError(f'split rule {rule!r} puts all {len(split)} samples in {side}')
  return split


def held_out_subjects(ds: SkeletonDataset, *, seed: int = 0,
                      test_fraction: float = 0.2) -> np.ndarray:
  """Subjects for the test side: a seeded `test_fraction` of each gender group (or of all)."""
  if not 0.0 < test_fraction < 1.0:
    raise ConfigError(f'test_fraction must be in (0, 1), got {test_fraction}')
  subjects = np.unique(ds.subject)
  if len(subjects) < 2:
    raise ConfigError('by_subject needs at least 2 subjects')
  if ds.gender is not None:
    # A subject's gender is its most frequent label (a sample may say -1, unknown).
    by_subject = np.asarray([np.bincount(ds.gender[ds.subject == s] + 1, minlength=3).argmax()
                             for s in subjects]) - 1
  else:
    by_subject = np.zeros(len(subjects), np.int64)
  rng = np.random.default_rng(seed)
  test = []
  for g in np.unique(by_subject):
    group = rng.permutation(subjects[by_subject == g])
    k = int(round(len(group) * test_fraction))
    test.extend(group[:min(max(k, 1 if len(group) > 1 else 0), len(group) - 1)])
  if not test:
    test = [rng.choice(subjects)]
  return np.sort(np.asarray(test, subjects.dtype))


def _random_within_subjects(subject: np.ndarray, seed: int, test_fraction: float) -> np.ndarray:
  if not 0.0 < test_fraction < 1.0:
    raise ConfigError(f'test_fraction must be in (0, 1), got {test_fraction}')
  rng = np.random.default_rng(seed)
  test = np.zeros(len(subject), bool)
  for s in np.unique(subject):
    idx = rng.permutation(np.flatnonzero(subject == s))
    if len(idx) >= 2:
      k = min(max(int(round(len(idx) * test_fraction)), 1), len(idx) - 1)
      test[idx[:k]] = True
  return test


def check_identity_split(train_subjects, test_subjects) -> None:
  """Raises ConfigError when test holds subjects never seen in training (re-ID cannot work).

  A re-identification classifier can only name subjects it was trained on; a split that holds
  out subjects (ntu_xsub, by_subject) makes every test sample of those subjects a guaranteed
  error, so accuracy numbers would be meaningless.
  """
  absent = np.setdiff1d(np.unique(np.asarray(test_subjects)), np.unique(np.asarray(train_subjects)))
  if absent.size:
    shown = ', '.join(str(int(s)) for s in absent[:10]) + (' ...' if absent.size > 10 else '')
    raise ConfigError(
        f'identity task: the test split holds {absent.size} subject(s) absent from training '
        f'({shown}); a re-identification model cannot name subjects it never saw. Use a split '
        "that keeps every subject on both sides (e.g. 'leakage_safe', 'ntu_xview', 'random').")


VALIDATION_BY = ('auto', 'sequence', 'people')


def validation_split(labels: np.ndarray, groups: np.ndarray | None, fraction: float, *,
                     by: str, seed: int = 0) -> np.ndarray:
  """bool [N]: the training samples held out for validation (checkpoint selection).

  by 'sequence': within every class of `labels` with two or more samples, round(fraction * n)
  of them (at least one, never all), so each class keeps training samples. This is how a
  closed-set re-identification judge is validated: the same people, other sequences. by
  'people': whole people (`groups`) are held out, round(fraction * people) of them (at least one,
  never all), chosen within each class of the people's majority label so that, for gender, both
  classes are validated (one person per class with two or more people): a judge of people it never saw is validated on people it never saw.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng([int(seed), 7211])
  held = np.zeros(len(labels), bool)
  if not 0.0 < fraction < 1.0:
    raise ConfigError(f'val_fraction must be in (0, 1), got {fraction}')
  if by == 'sequence':
    for label in np.unique(labels):
      members = np.flatnonzero(labels == label)
      if len(members) < 2:
        continue
      count = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
      held[rng.choice(members, count, replace=False)] = True
    return held
  if by != 'people':
    raise ConfigError(f"val_by must be one of {VALIDATION_BY}, got {by!r}")
  if groups is None:
    raise ConfigError("val_by='people' needs the training samples' subjects")
  groups = np.asarray(groups)
  people = np.unique(groups)
  if len(people) < 2:
    raise ConfigError(f'val_by=people needs two or more training people, got {len(people)}')
  majority = np.asarray([np.bincount(labels[groups == p] - labels.min()).argmax()
                         for p in people])
  chosen = []
  for label in np.unique(majority):
    members = people[majority == label]
    count = max(1, int(round(fraction * len(members)))) if len(members) >= 2 else 0
    chosen += list(rng.choice(members, min(count, len(members) - 1), replace=False))
  if not chosen:               # one person per class: hold out one person all the same
    chosen = [rng.choice(people)]
  return np.isin(groups, chosen)
