"""The attack suite: every attacker fitted on train only, scored on test only, one row per metric.

`run_suite(train, test, ...)` is what `audit` and the pipeline's evaluate stage call. It returns
audit.json's `attacks` (rows {task, attacker, family, metric, value, ci, chance}), `strongest`
(per task, the attacker with the highest headline metric), `chance`, `cmc` (re-identification
curves) and `timing`.

Attackers (names for --attackers):
  <family>_nn, <family>_linear   1-NN (cosine on standardised features) and L2 logistic
                                 regression, family body, motion or body+motion (seconds).
  linkage                        same-person verifier on pair features (privacy only, AUC/EER).
  stgcn, sgn                     networks retrained from scratch (minutes; `all` only).
`fast` is every non-neural attacker, `all` adds the networks. Tasks: 'privacy' (the target:
subject or gender) and 'action' (utility: what the data is for), the latter when the data has
two actions or more.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Callable, Sequence

import numpy as np

from skeleton_anon.attacks import linkage as linkage_lib, neural
from skeleton_anon.attacks.data import AttackData
from skeleton_anon.models.linear import (LogisticRegression, Standardizer,
                                          nearest_neighbour_scores)
from skeleton_anon.data import features as features_lib
from skeleton_anon.errors import ConfigError
from skeleton_anon.evaluate import metrics

FEATURE_FAMILIES = ('body', 'motion', 'body+motion')
FAST = tuple(f'{f}_{m}' for f in FEATURE_FAMILIES for m in ('nn', 'linear')) + ('linkage',)
NEURAL = neural.ARCHS
ALL = FAST + NEURAL
CMC_RANKS = 20
# The metric that names the strongest attacker of each task (balanced accuracy for gender: a
# majority-gender guess must not look strong).
HEADLINE = {'subject': 'top1', 'gender': 'balanced_accuracy', 'action': 'top1'}


def resolve_attackers(spec: str | Sequence[str]) -> tuple[str, ...]:
  """'fast' | 'all' | 'a,b' | [names] -> attacker names; ConfigError on an unknown one."""
  if isinstance(spec, str):
    if spec in ('fast', 'all'):
      return FAST if spec == 'fast' else ALL
    spec = [s.strip() for s in spec.split(',') if s.strip()]
  unknown = [s for s in spec if s not in ALL]
  if unknown or not spec:
    raise ConfigError(f'unknown attacker(s) {unknown or spec!r}; use fast, all or a comma list '
                      f'of {", ".join(ALL)}')
  return tuple(dict.fromkeys(spec))


@dataclasses.dataclass
class _Context:
  train: AttackData
  test: AttackData
  layout: object
  seed: int
  mesh: object
  workdir: str | None
  neural_settings: neural.NeuralSettings
  _features: dict = dataclasses.field(default_factory=dict)
  feature_seconds: float = 0.0

  def features(self, family: str) -> tuple[np.ndarray, np.ndarray]:
    """Standardised (train, test) features of a family, computed once for all families."""
    if 'raw' not in self._features:
      start = time.time()
      compute = functools.partial(features_lib.sequence_features, layout=self.layout,
                                  family='body+motion')
      self._features['raw'] = (compute(self.train.x, self.train.lengths),
                               compute(self.test.x, self.test.lengths))
      self.feature_seconds = time.time() - start
    body = features_lib.feature_dim(self.layout, 'body')
    cols = {'body': slice(0, body), 'motion': slice(body, None), 'body+motion': slice(None)}
    train, test = (f[:, cols[family]] for f in self._features['raw'])
    scaler = Standardizer.fit(train)
    return scaler(train), scaler(test)


def _feature_attacker(family: str, method: str):
  def scores(ctx: _Context, train_y, num_classes):
    train_f, test_f = ctx.features(family)
    if method == 'nn':
      return nearest_neighbour_scores(train_f, train_y, test_f, num_classes)
    return LogisticRegression.fit(train_f, train_y, num_classes).scores(test_f)
  return scores


def _neural_attacker(arch: str):
  def scores(ctx: _Context, train_y, num_classes):
    logits, _ = neural.neural_scores(
        arch, ctx.train.x, ctx.train.lengths, train_y, ctx.test.x, ctx.test.lengths,
        num_classes, layout=ctx.layout, seed=ctx.seed, mesh=ctx.mesh, workdir=ctx.workdir,
        settings=ctx.neural_settings)
    return logits
  return scores


def _family(name: str) -> str:
  return name.rsplit('_', 1)[0] if name.endswith(('_nn', '_linear')) else name


def _classifiers() -> dict[str, Callable]:
  out = {f'{f}_{m}': _feature_attacker(f, m) for f in FEATURE_FAMILIES for m in ('nn', 'linear')}
  out.update({arch: _neural_attacker(arch) for arch in NEURAL})
  return out


def _row(task, attacker, metric, value, ci, chance):
  return {'task': task, 'attacker': attacker, 'family': _family(attacker), 'metric': metric,
          'value': None if value is None or not np.isfinite(value) else float(value),
          'ci': [None if not np.isfinite(c) else float(c) for c in ci],
          'chance': float(chance)}


def classification_rows(task: str, attacker: str, scores: np.ndarray, train_y: np.ndarray,
                        test_y: np.ndarray, *, target: str, seed: int = 0,
                        num_bootstrap: int = metrics.BOOTSTRAP_SAMPLES,
                        groups: np.ndarray | None = None) -> list[dict]:
  """Rows for one attacker's class scores [n_test, K] on one task.

  Re-identification and action: top1 (and top5 for re-identification with >= 5 people); gender:
  top1, balanced_accuracy and auc. Every row has a bootstrap interval (the same resamples for
  every attacker: same seed, same n) and its chance level. With `groups` (the test samples'
  people) the interval resamples people, not sequences (metrics.bootstrap_ci).
  """
  kind = target if task == 'privacy' else 'action'
  wanted = ['top1']
  if kind == 'subject' and scores.shape[1] >= 5:
    wanted.append('top5')
  if kind == 'gender':
    wanted += ['balanced_accuracy', 'auc']
  ci = functools.partial(metrics.bootstrap_ci, num_samples=len(test_y), num=num_bootstrap,
                         seed=seed, groups=groups)
  fns = {'top1': functools.partial(metrics.topk_accuracy, scores, test_y, 1),
         'top5': functools.partial(metrics.topk_accuracy, scores, test_y, 5),
         'balanced_accuracy': functools.partial(metrics.balanced_accuracy, scores, test_y)}
  if kind == 'gender':
    fns['auc'] = functools.partial(metrics.roc_auc, scores[:, 1] - scores[:, 0], test_y)
  return [_row(task, attacker, m, fns[m](), ci(fns[m]),
               metrics.chance_level(m, train_y, test_y)) for m in wanted]


def _linkage_rows(ctx: _Context, num_bootstrap: int) -> list[dict]:
  if ctx.train.subject is None or ctx.test.subject is None:
    return []
  train_f, test_f = ctx.features('body+motion')
  out = linkage_lib.linkage_scores(train_f, ctx.train.subject, test_f, ctx.test.subject,
                                   seed=ctx.seed)
  if out is None:
    return []
  scores, same = out
  ci = functools.partial(metrics.bootstrap_ci, num_samples=len(same), num=num_bootstrap,
                         seed=ctx.seed)
  auc = functools.partial(metrics.roc_auc, scores, same)
  eer = functools.partial(metrics.equal_error_rate, scores, same)
  return [_row('privacy', 'linkage', 'auc', auc(), ci(auc), 0.5),
          _row('privacy', 'linkage', 'eer', eer(), ci(eer), 0.5)]


def strongest(rows: Sequence[dict], privacy_target: str) -> dict:
  """Per task, the row with the highest headline metric: {task: {attacker, metric, value, ...}}."""
  out = {}
  for task, metric in (('privacy', HEADLINE[privacy_target]), ('action', HEADLINE['action'])):
    candidates = [r for r in rows if r['task'] == task and r['metric'] == metric and
                  r['value'] is not None]
    if candidates:
      best = max(candidates, key=lambda r: r['value'])
      out[task] = {k: best[k] for k in ('attacker', 'family', 'metric', 'value', 'ci', 'chance')}
    else:
      out[task] = None
  return out


def run_suite(train: AttackData, test: AttackData, *, privacy_target: str, layout,
              attackers: str | Sequence[str] = 'fast', seed: int = 0, mesh=None,
              workdir: str | None = None, num_bootstrap: int = metrics.BOOTSTRAP_SAMPLES,
              neural_settings: neural.NeuralSettings | None = None,
              log: Callable[[str], None] | None = None) -> dict:
  """Fits every requested attacker on `train`, scores it on `test`.

  Args:
    train, test: the two sides (attacks.data.attack_split makes them from a dataset).
    privacy_target: 'subject' or 'gender' (what `privacy` labels mean).
    layout: the skeleton (features and GCNs read its bones).
    attackers: 'fast', 'all', a comma list or a sequence of names (see the module docstring).
    seed: bootstrap, pair sampling and network initialisation.
    mesh, workdir: for the neural attackers (default: every device; a temporary folder).
    log: where progress lines go (default: stderr).

  Returns:
    {'attacks': rows, 'strongest': {...}, 'chance': {'privacy', 'action'}, 'cmc': {attacker:
    [top-1..top-R]}, 'timing': {attacker: seconds, 'features': s, 'total': s}, 'attackers':
    names, 'skipped': {name: reason}}.
  """
  log = log or (lambda line: print(line, file=sys.stderr))
  names = resolve_attackers(attackers)
  settings = neural_settings or neural.NeuralSettings()
  ctx = _Context(train, test, layout, seed, mesh, workdir, settings)
  tasks = {'privacy': (train.privacy, test.privacy)}
  if (train.action is not None and test.action is not None and
      len(np.unique(train.action)) >= 2):
    tasks['action'] = (train.action, test.action)
  chance = {task: metrics.chance_level('top1', *labels) for task, labels in tasks.items()}
  chance.setdefault('action', 1.0)
  if privacy_target == 'gender':
    chance['privacy_balanced_accuracy'] = 0.5
  neural_names = [n for n in names if n in NEURAL]
  if neural_names:
    eta = neural.estimate_seconds(len(train), train.x.shape[2], train.x.shape[3], settings,
                                  neural_names) * len(tasks)
    log(f'attacks: {len(neural_names)} neural attacker(s) x {len(tasks)} task(s) will take '
        f'about {eta / 60:.0f} min on 2 CPU cores (less on an accelerator)')
  rows, cmc, timing, skipped = [], {}, {}, {}
  start = time.time()
  classifiers = _classifiers()
  for name in names:
    t0 = time.time()
    if name == 'linkage':
      got = _linkage_rows(ctx, num_bootstrap)
      if not got:
        skipped[name] = 'no person has two sequences on both sides'
      rows += got
    else:
      for task, (train_y, test_y) in tasks.items():
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        scores = classifiers[name](ctx, np.asarray(train_y), num_classes)
        rows += classification_rows(task, name, scores, train_y, test_y,
                                    target=privacy_target, seed=seed,
                                    num_bootstrap=num_bootstrap, groups=test.subject)
        if task == 'privacy' and privacy_target == 'subject':
          cmc[name] = [float(v) for v in metrics.cmc_curve(scores, test_y, CMC_RANKS)]
    timing[name] = round(time.time() - t0, 3)
    log(f'attacks: {name} done in {timing[name]:.1f} s')
  timing['features'] = round(ctx.feature_seconds, 3)     # inside the first feature attacker's
  timing['total'] = round(time.time() - start, 3)
  return {'attacks': rows, 'strongest': strongest(rows, privacy_target), 'chance': chance,
          'cmc': cmc, 'timing': timing, 'attackers': list(names), 'skipped': skipped}


def train_on_anonymized(anonymized_train: AttackData, original_train: AttackData,
                        original_test: AttackData, *, privacy_target: str, layout,
                        attackers: str = 'fast', seed: int = 0, log=None) -> dict:
  """Can a model trained on a release recognise real people's actions? The suite's fast action
  attackers (feature families, no linkage) fitted on the anonymized training split and on the
  original one, both scored on the ORIGINAL test split:
  {'test_data': 'original', 'by_attacker': {'original'|'anonymized': {attacker: top-1}},
   'best': {'original'|'anonymized': the best attacker's top-1}}."""
  fast = ','.join(n for n in resolve_attackers(attackers) if n in FAST and n != 'linkage')
  rows = {}
  for kind, train in (('original', original_train), ('anonymized', anonymized_train)):
    result = run_suite(train, original_test, privacy_target=privacy_target, layout=layout,
                       attackers=fast or 'fast', seed=seed, num_bootstrap=200, log=log)
    rows[kind] = {r['attacker']: r['value'] for r in result['attacks']
                  if r['task'] == 'action' and r['metric'] == 'top1'}
  best = {kind: max(v.values()) if v else None for kind, v in rows.items()}
  return {'test_data': 'original', 'by_attacker': rows, 'best': best}
