"""The attack suite inside a run: every attacker retrained on each version of the data, the
utility that collapse cannot fake, and fidelity.

The same suite `python -m skeleton_anon.audit` runs (skeleton_anon.attacks.suite), fitted on the
run's training split and scored on its test split, for the original data, the anonymized data and
the retargeting baseline. So the report's "strongest attacker" is the number an auditor of the
exported files would find, and the anonymizer is judged by attackers it never trained against.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from skeleton_anon.attacks import suite
from skeleton_anon.attacks.data import AttackData
from skeleton_anon.data import transforms
from skeleton_anon.evaluate import fidelity as fidelity_lib, metrics
from skeleton_anon.evaluate import utility as utility_lib


def _side(ds, privacy: np.ndarray, x: np.ndarray, lengths=None) -> AttackData:
  return AttackData(x=x, lengths=ds.lengths if lengths is None else lengths, privacy=privacy,
                    action=ds.action,
                    subject=ds.subject, names=ds.names)


def suite_attackers(run) -> str:
  """config.evaluate.attacks: 'fast' (default), 'all', a comma list, or '' to skip the suite."""
  return str(run.config.evaluate.get('attacks', 'fast') or '')


def run_attack_suite(run, versions: dict) -> dict:
  """{'attacks': rows with a 'data' key, 'strongest': {data: ...}, 'cmc': {data: ...},
  'chance', 'timing'} for versions {data kind: (x_train, x_test[, lengths_train,
  lengths_test])} (lengths: default the inputs')."""
  names = suite_attackers(run)
  data = run.data
  out = {'attacks': [], 'strongest': {}, 'cmc': {}, 'chance': None, 'timing': {}}
  if not names:
    return out
  for kind, (x_train, x_test, *lengths) in versions.items():
    logging.info('evaluate: attack suite (%s) on %s data', names, kind)
    len_train, len_test = lengths or (None, None)
    result = suite.run_suite(
        _side(data.train, data.privacy_train, x_train, len_train),
        _side(data.test, data.privacy_test, x_test, len_test),
        privacy_target=data.privacy_target, layout=data.layout, attackers=names,
        seed=run.stage_seed(f'attacks_{kind}'), mesh=run.mesh,
        workdir=run.io.checkpoint_dir(f'attacks_{kind}'), log=logging.info)
    out['attacks'] += [{'data': kind, **row} for row in result['attacks']]
    out['strongest'][kind] = result['strongest']
    out['cmc'][kind] = result['cmc']
    out['chance'] = result['chance']
    out['timing'][kind] = result['timing']
  return judge_neural_attackers(out, data.privacy_target, len(data.test.x))


def judge_neural_attackers(out: dict, privacy_target: str, num_test: int) -> dict:
  """Flags the suite's networks that did not learn the original data, and leaves them out of
  `strongest` for every version of the data (a network at chance on anonymized data says
  nothing when it was at chance on the original too). The bar is metrics.learned_threshold
  against the best feature attacker; out['not_learned'] = {task: [attacker, ...]}."""
  original = [r for r in out['attacks'] if r['data'] == 'original' and r['metric'] == 'top1'
              and r['value'] is not None]
  not_learned = {}
  for task in ('privacy', 'action'):
    rows = [r for r in original if r['task'] == task]
    features = [r['value'] for r in rows if r['attacker'] not in suite.NEURAL]
    if not rows:
      continue
    bar = metrics.learned_threshold(rows[0]['chance'], num_test,
                                    max(features) if features else None)
    failed = sorted({r['attacker'] for r in rows
                     if r['attacker'] in suite.NEURAL and r['value'] < bar})
    if failed:
      not_learned[task] = failed
  for r in out['attacks']:
    if r['attacker'] in not_learned.get(r['task'], ()):
      r['learned'] = False
  if not_learned:
    for kind in out['strongest']:
      rows = [r for r in out['attacks'] if r['data'] == kind and r.get('learned') is not False]
      out['strongest'][kind] = suite.strongest(rows, privacy_target)
  out['not_learned'] = not_learned
  return out


def utility(run, anon_train: np.ndarray, anon_test: np.ndarray,
            anon_lengths: dict | None = None) -> dict:
  """What the anonymized data is still good for, beyond fooling and pleasing classifiers.

  train_on_anonymized: action attackers of the suite fitted on anonymized training data and
    scored on the ORIGINAL test data, beside the same attackers fitted on original data (can a
    model trained on the published data recognise real people's actions?).
  diversity: within-action diversity of the anonymized test data relative to the original's
    (evaluate.utility; 1 keeps the variety, 0 is one prototype per action).
  Both need at least two actions; a single-action dataset gets the reason instead.
  anon_lengths: {'train', 'test'} lengths of the anonymized splits (default the inputs').
  """
  data = run.data
  anon_lengths = anon_lengths or {'train': data.train.lengths, 'test': data.test.lengths}
  if data.num_actions < 2:
    return {'skipped': 'the dataset has a single action: action utility cannot be measured'}
  target = transforms.median_bone_lengths(data.train.x, data.train.lengths, data.layout)
  out = {'diversity': utility_lib.within_action_diversity(
      data.test.x, anon_test, data.test.lengths, data.test.action, data.layout, target,
      seed=run.stage_seed('diversity'), anonymized_lengths=anon_lengths['test'])}
  names = suite_attackers(run)
  if names:
    out['train_on_anonymized'] = suite.train_on_anonymized(
        _side(data.train, data.privacy_train, anon_train, anon_lengths['train']),
        _side(data.train, data.privacy_train, data.train.x),
        _side(data.test, data.privacy_test, data.test.x), privacy_target=data.privacy_target,
        layout=data.layout, attackers=names, seed=run.stage_seed('utility'), log=logging.info)
  return out


def fidelity(run, anon_test: np.ndarray, lengths: np.ndarray | None = None) -> dict:
  """evaluate.fidelity of the anonymized test split against the original (data units), over
  `lengths` frames (default the inputs'; the frames both play when durations changed)."""
  data = run.data
  return fidelity_lib.fidelity(data.test.x, anon_test,
                               data.test.lengths if lengths is None else lengths, data.layout)
