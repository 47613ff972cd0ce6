"""python -m skeleton_anon.audit --data=FILE --privacy_target=subject|gender --out=DIR

  [--reference=ORIGINAL] [--attackers=fast|all|NAME,...] [--split_rule=RULE] [--overwrite]

Scores how much any dataset leaks, whoever made it: the attack suite (attacks/suite.py) is fitted
on the file's train split and scored on its test split, and DIR gets audit.json (the contract
below), audit.md (strongest attacker first) and plots/. With --reference (the original the file
was made from), samples are paired by `names` and fidelity (RMSE, MPJPE, bone-length change,
jitter) and utility (the suite's action attackers trained on this file and on the original,
both tested on the original test split) are reported too.

audit.json: {data, privacy_target, split {rule, num_train, num_test, across_people, ...},
chance {action, privacy}, attacks [{task, attacker, family, metric, value, ci, chance}],
strongest {privacy, action}, fidelity and utility (with --reference), timing, ...}; keys are only ever
added, never renamed.

Inputs: a generic .npz, or an MS-G3D (N, 3, T, V, M) .npy with its label pickle (--labels, or
<part>_label.pkl beside it). Every bad input is one line `error: ...` and exit status 1.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import app, flags
import numpy as np

from skeleton_anon.errors import DataError, OutputExistsError, SkeletonAnonError


def _define_flags():
  # Only when run as a command: importing this module registers no global flags.
  flags.DEFINE_string('data', None, 'Dataset to audit: generic .npz or MS-G3D .npy.')
  flags.DEFINE_string('labels', '', 'MS-G3D label pickle (default: <part>_label.pkl beside it).')
  flags.DEFINE_enum('privacy_target', None, ['subject', 'gender'], 'What the attackers infer.')
  flags.DEFINE_string('out', None, 'Output folder (audit.json, audit.md, plots/).')
  flags.DEFINE_string('reference', '', 'The original dataset, for fidelity (paired by names).')
  flags.DEFINE_string('reference_labels', '', 'Label pickle of an MS-G3D --reference.')
  flags.DEFINE_string('attackers', 'fast', "'fast', 'all' or a comma list of attacker names.")
  flags.DEFINE_string('split_rule', 'default', "Split rule (data/splits.py); 'default': the "
                      "file's split when it fits, else closed-set for subject, by_subject for "
                      'gender.')
  flags.DEFINE_float('test_fraction', 0.2, 'Test share for the random / by_subject rules.')
  flags.DEFINE_integer('seed', 0, 'Split, bootstrap and network seed.')
  flags.DEFINE_bool('overwrite', False, 'Replace the contents of an existing --out.')


FLAGS = flags.FLAGS


def load_dataset(path: str, labels: str = ''):
  """A generic .npz or an MS-G3D .npy (+ pickle) as a SkeletonDataset; DataError otherwise."""
  from skeleton_anon.anonymize import input_format
  from skeleton_anon.data import formats
  from skeleton_anon.data.dataset import load_npz
  fmt = input_format(path)
  if not os.path.exists(path):
    raise DataError(path, 'file does not exist')
  if fmt == 'npz':
    return load_npz(path)
  return formats.read_msg3d(path, labels or formats.msg3d_label_path(path))


def pair_by_names(data, reference, data_path: str, reference_path: str) -> np.ndarray:
  """int [N]: for each sample of `data`, the index of the same-named sample in `reference`."""
  for ds, path in ((data, data_path), (reference, reference_path)):
    if ds.names is None:
      raise DataError(path, "has no 'names'; --reference pairs samples by name")
  ref_names = np.asarray(reference.names).astype(str)
  unique, counts = np.unique(ref_names, return_counts=True)
  if (counts > 1).any():
    raise DataError(reference_path, f'sample name {unique[counts > 1][0]!r} occurs '
                    f'{counts.max()} times; names must be unique to pair samples')
  lookup = {name: i for i, name in enumerate(ref_names)}
  names = np.asarray(data.names).astype(str)
  missing = [n for n in names if n not in lookup]
  if missing:
    raise DataError(data_path, f'{len(missing)} of {len(names)} sample names are not in '
                    f'{reference_path} (first: {missing[0]!r}); --reference must be the file '
                    'this one was made from')
  if reference.x.shape[1:] != data.x.shape[1:]:
    raise DataError(data_path, f'samples are {list(data.x.shape[1:])} [M, T, V, C] but '
                    f'{reference_path} has {list(reference.x.shape[1:])}')
  return np.asarray([lookup[n] for n in names], np.int64)


def reference_fidelity(data, reference, data_path: str, reference_path: str) -> dict:
  from skeleton_anon.evaluate.fidelity import fidelity
  index = pair_by_names(data, reference, data_path, reference_path)
  out = fidelity(reference.x[index], data.x, reference.lengths[index], reference.get_layout())
  out['num_paired'] = int(len(index))
  return out


def reference_utility(train, test, reference, data_path: str, reference_path: str, *,
                      privacy_target: str, layout, attackers: str, seed: int, log=None) -> dict:
  """audit.json `utility` with --reference: the suite's action attackers trained on this
  file's training split and on the same samples of the original, both scored on the original
  of the test split (pipeline report.json's `utility.train_on_anonymized`, on files)."""
  from skeleton_anon.attacks import suite
  if train.action is None or len(np.unique(train.action)) < 2:
    return {'skipped': 'fewer than two actions: action utility cannot be measured'}
  ref_names = {n: i for i, n in enumerate(np.asarray(reference.names).astype(str))}

  def original(side):
    index = np.asarray([ref_names[n] for n in np.asarray(side.names).astype(str)], np.int64)
    return dataclasses.replace(side, x=np.asarray(reference.x[index], np.float32),
                               lengths=np.asarray(reference.lengths)[index])

  return {'train_on_anonymized': suite.train_on_anonymized(
      train, original(train), original(test), privacy_target=privacy_target, layout=layout,
      attackers=attackers, seed=seed, log=log)}


def audit(data_path: str, privacy_target: str, out_dir: str, *, reference: str = '',
          attackers: str = 'fast', split_rule: str | None = None, overwrite: bool = False,
          labels: str = '', reference_labels: str = '', test_fraction: float = 0.2,
          seed: int = 0, log=None) -> dict:
  """Library form of the command: runs the audit and writes out_dir; returns audit.json."""
  # The suite (and JAX) is imported only once the inputs are known to be good, so a bad input
  # fails in about a second.
  from skeleton_anon.attacks import data as attack_data
  start = time.time()
  if os.path.exists(out_dir) and not overwrite:
    raise OutputExistsError(out_dir)
  ds = load_dataset(data_path, labels)
  ref = load_dataset(reference, reference_labels) if reference else None
  loaded = time.time()
  fid = reference_fidelity(ds, ref, data_path, reference) if ref is not None else None
  train, test, split = attack_data.attack_split(ds, privacy_target, split_rule, seed=seed,
                                                test_fraction=test_fraction, path=data_path)
  from skeleton_anon.attacks import report, suite
  suite.resolve_attackers(attackers)
  result = suite.run_suite(train, test, privacy_target=privacy_target,
                           layout=ds.get_layout(), attackers=attackers, seed=seed,
                           log=log)
  out = {
      'data': data_path, 'privacy_target': privacy_target, 'split': split,
      'chance': result['chance'], 'attacks': result['attacks'],
      'strongest': result['strongest'],
      'timing': dict(result['timing'], load=round(loaded - start, 3)),
      'cmc': result['cmc'], 'attackers': result['attackers'], 'skipped': result['skipped'],
      'layout': ds.layout, 'num_samples': ds.num_samples,
  }
  if fid is not None:
    out['fidelity'], out['reference'] = fid, reference
    out['utility'] = reference_utility(train, test, ref, data_path, reference,
                                       privacy_target=privacy_target, layout=ds.get_layout(),
                                       attackers=attackers, seed=seed, log=log)
  out['timing']['audit_total'] = round(time.time() - start, 3)
  report.write_outputs(out, out_dir)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    result = audit(FLAGS.data, FLAGS.privacy_target, FLAGS.out, reference=FLAGS.reference,
                   attackers=FLAGS.attackers, split_rule=FLAGS.split_rule,
                   overwrite=FLAGS.overwrite, labels=FLAGS.labels,
                   reference_labels=FLAGS.reference_labels,
                   test_fraction=FLAGS.test_fraction, seed=FLAGS.seed)
  except SkeletonAnonError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  for task, best in result['strongest'].items():
    if best:
      print(f"strongest {task} attacker: {best['attacker']} {best['metric']} "
            f"{best['value']:.3f} (chance {best['chance']:.3f})")
  print(f'audit -> {os.path.join(FLAGS.out, "audit.json")}')


def run():
  _define_flags()
  flags.mark_flags_as_required(['data', 'privacy_target', 'out'])
  app.run(main)


if __name__ == '__main__':
  run()
