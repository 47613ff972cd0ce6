"""report.json (DESIGN section 3) and report.md, the tables a person reads first.

The JSON contract is fixed; this module extends it only by adding keys (documented in README):
  - evaluations[*].data may also be 'retarget' (the bone-length retargeting baseline);
  - recon_rmse.retarget: float, when that baseline ran;
  - evaluations[*].bank: the classifier bank a row's model belongs to;
  - agreement: {task: {'models': [...], 'matrix': [[...]]}} on the original data (Tables 1-2);
  - run: free-form facts about the run (config name, ensemble sizes, alpha, beta, ...);
  - attacks: the attack suite's rows (audit.json's `attacks`, each with a `data` key: original,
    anonymized, retarget), `strongest` per data kind, `cmc`, `chance`, `timing`;
  - strongest: {data kind: {'privacy': {attacker, metric, value}, 'action': {...}}};
  - utility: within-action diversity and train-on-anonymized / test-on-original action top-1;
  - fidelity: RMSE, MPJPE, bone-length change and stability, jitter of the anonymized test data;
  - evaluations[*].ci: the row's 95% interval by people (cluster bootstrap over test subjects);
  - evaluations[*].learned: whether the classifier learned the original data (judge_learning);
    learning: the rule, its thresholds and the classifiers it left out, with why.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, Sequence

from skeleton_anon.data.dataset import atomic_write
from skeleton_anon.evaluate.leakage import mean_or_none
from skeleton_anon.evaluate.metrics import learned_threshold

DATA_KINDS = ('original', 'anonymized', 'noise', 'retarget')
TASKS = ('action', 'privacy')
ROLES = ('trained_against', 'holdout_seed', 'holdout_arch', 'retrained')
HELD_OUT_ROLES = ('holdout_seed', 'holdout_arch')


def evaluation_row(*, data: str, task: str, model: str, seed: int, role: str,
                   top1: float, top5: float | None, sigma: float | None = None,
                   bank: str | None = None, ci: Sequence[float] | None = None) -> dict:
  """One entry of report['evaluations'], checked against the contract's vocabulary.

  `bank` (an added key) names the classifier bank the row's model belongs to, which tells apart
  two banks of one architecture (e.g. the adversary's starting and final weights).
  """
  if data not in DATA_KINDS:
    raise ValueError(f'data must be one of {DATA_KINDS}, got {data!r}')
  if task not in TASKS:
    raise ValueError(f'task must be one of {TASKS}, got {task!r}')
  if role not in ROLES:
    raise ValueError(f'role must be one of {ROLES}, got {role!r}')
  if (sigma is None) == (data == 'noise'):
    raise ValueError('sigma is required for noise rows and only for them')
  row = {'data': data, 'sigma': None if sigma is None else float(sigma), 'task': task,
         'model': str(model), 'seed': int(seed), 'role': role, 'top1': float(top1),
         'top5': None if top5 is None else float(top5)}
  if bank is not None:
    row['bank'] = str(bank)
  if ci is not None:
    row['ci'] = [float(c) for c in ci]
  return row


LEARNING_RULE = ('a classifier learned its task if its top-1 on the original test data is at '
                 'least chance + max(1/2 (suite best - chance), 3 sqrt(chance (1 - chance) / '
                 'n_test)); a retrained attacker, which never saw original data, is judged by '
                 'its recipe: the classifiers of its architecture and task trained on the '
                 'original data. Rows of a classifier that did not learn are left out of the '
                 'headline, the trade-off plot and the strongest choice.')


def _key(row: dict) -> tuple:
  return row['task'], row.get('bank', row['model']), row['seed']


def judge_learning(evaluations: Sequence[dict], chance: dict, num_test: int,
                   suite_rows: Sequence[dict] = ()) -> dict:
  """Marks every row `learned` True / False / None (unverified) in place; returns the summary.

  A network that never learned the original data reads "at chance" on anonymized data as well,
  which looks like privacy and is not evidence of anything; this finds such networks.
  """
  thresholds, best = {}, {}
  for task in TASKS:
    candidates = [r for r in suite_rows if r.get('data', 'original') == 'original'
                  and r['task'] == task and r['metric'] == 'top1' and r['value'] is not None
                  and r.get('learned', True) is not False]
    top = max(candidates, key=lambda r: r['value']) if candidates else None
    thresholds[task] = learned_threshold(chance[task], num_test,
                                         None if top is None else top['value'])
    best[task] = None if top is None else {'attacker': top['attacker'], 'value': top['value']}
  # Each classifier (task, bank, seed) is judged once, on its original-data row.
  original = {_key(r): r for r in evaluations
              if r['data'] == 'original' and r['role'] != 'retrained'}
  # An undefined score (NaN: no known label) proves nothing either way.
  verdict = {k: (None if not math.isfinite(r['top1']) else r['top1'] >= thresholds[k[0]])
             for k, r in original.items()}
  recipes: dict[tuple, list] = {}
  for key, r in original.items():
    recipes.setdefault((r['task'], r['model']), []).append((key, verdict[key]))
  flagged, unverified, seen = [], [], set()
  for r in evaluations:
    key = _key(r)
    if key in verdict:
      r['learned'] = verdict[key]
      top1 = original[key]['top1']
      why = (f"original top-1 {top1:.3f} is under {thresholds[r['task']]:.3f} (chance "
             f"{float(chance[r['task']]):.3f})")
    else:
      members = recipes.get((r['task'], r['model']), [])
      r['learned'] = (None if not members or any(ok is None for _, ok in members)
                      else all(ok for _, ok in members))
      failed = ', '.join(f'{k[1]}/{k[2]}' for k, ok in members if ok is False)
      why = (f"its recipe ({r['model']}, {r['task']}) did not learn the original data "
             f"({failed})")
    if key in seen or r['learned']:
      continue
    seen.add(key)
    entry = {'task': r['task'], 'bank': key[1], 'model': r['model'], 'seed': r['seed'],
             'role': r['role']}
    if r['learned'] is False:
      flagged.append({**entry, 'why': why})
    else:
      unverified.append(entry)
  return {'rule': LEARNING_RULE, 'threshold': thresholds, 'suite_best': best,
          'flagged': flagged, 'unverified': unverified}


def build_report(*, dataset: dict, chance: dict, evaluations: Sequence[dict],
                 recon_rmse: dict, timing: dict, agreement: dict | None = None,
                 run: dict | None = None, attacks: dict | None = None,
                 utility: dict | None = None, fidelity: dict | None = None,
                 guarantee: dict | None = None) -> dict:
  """Assembles report.json's dictionary in the contract's key order (guarantee: the private
  fit's record, train/private_prior.guarantee; None: not differentially private)."""
  for key in ('path', 'num_train', 'num_test', 'privacy_target'):
    if key not in dataset:
      raise ValueError(f'dataset summary lacks {key!r}')
  report = {
      'dataset': dict(dataset),
      'chance': {'action': float(chance['action']), 'privacy': float(chance['privacy'])},
      'evaluations': list(evaluations),
      'recon_rmse': dict(recon_rmse),
      'timing': dict(timing),
  }
  if agreement is not None:
    report['agreement'] = agreement
  if run is not None:
    report['run'] = run
  report['learning'] = judge_learning(
      report['evaluations'], report['chance'], int(dataset['num_test']),
      (attacks or {}).get('attacks') or ())
  if attacks is not None and attacks.get('attacks'):
    report['attacks'] = attacks
    report['strongest'] = attacks['strongest']
  report['differential_privacy'] = guarantee or {'private': False}
  if utility is not None:
    report['utility'] = utility
  if fidelity is not None:
    report['fidelity'] = fidelity
  return report


def _json_default(value):
  # numpy scalars and arrays reach the report from metrics; JSON needs plain Python.
  if hasattr(value, 'tolist'):
    return value.tolist()
  raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def _finite_or_none(obj):
  """NaN is not JSON; an undefined score is written as null."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite_or_none(v) for v in obj]
  return obj


def write_json(obj, path, *, overwrite: bool = True) -> None:
  """Writes JSON atomically (temporary file, then rename)."""
  text = json.dumps(_finite_or_none(json.loads(json.dumps(obj, default=_json_default))),
                    indent=2)

  def write(tmp):
    with open(tmp, 'w') as f:
      f.write(text + '\n')

  atomic_write(path, write, overwrite=overwrite)


def load_report(path) -> dict:
  """Reads a report.json and checks the contract's required keys."""
  with open(path) as f:
    report = json.load(f)
  missing = [k for k in ('dataset', 'chance', 'evaluations', 'recon_rmse', 'timing')
             if k not in report]
  if missing:
    raise ValueError(f'{path}: not a report.json, missing {missing}')
  return report


def select(evaluations: Iterable[dict], *, data: str, task: str,
           roles: Sequence[str] | None = None, sigma: float | None = None,
           learned_only: bool = False) -> list[dict]:
  """The rows of one data kind and task, optionally restricted to roles and a noise sigma, and
  (learned_only) to classifiers not flagged as having failed to learn (judge_learning)."""
  return [e for e in evaluations
          if e['data'] == data and e['task'] == task
          and (roles is None or e['role'] in roles)
          and (sigma is None or (e['sigma'] is not None and math.isclose(e['sigma'], sigma)))
          and not (learned_only and e.get('learned') is False)]


def mean_top1(report: dict, *, data: str, task: str, roles: Sequence[str] | None = None,
              sigma: float | None = None, learned_only: bool = True) -> float | None:
  """Mean top-1 over the selected rows of classifiers that learned; None when none match."""
  rows = select(report['evaluations'], data=data, task=task, roles=roles, sigma=sigma,
                learned_only=learned_only)
  return mean_or_none([r['top1'] for r in rows])


def noise_sigmas(report: dict) -> list[float]:
  return sorted({e['sigma'] for e in report['evaluations'] if e['data'] == 'noise'})


def summarize(report: dict) -> dict:
  """Headline numbers: mean top-1 of the held-out classifiers (and of the retrained attacker).

  Held-out means `holdout_seed` and `holdout_arch`: classifiers the anonymizer never saw, the
  only ones whose verdict on utility and privacy is honest. Used by report.md, the manifest and
  the sweep plots.
  """
  out = {'chance': report['chance']}
  for data in ('original', 'anonymized', 'retarget'):
    out[data] = {t: mean_top1(report, data=data, task=t, roles=HELD_OUT_ROLES) for t in TASKS}
  out['anonymized_retrained'] = {
      t: mean_top1(report, data='anonymized', task=t, roles=('retrained',)) for t in TASKS}
  # The attack suite's strongest attacker per data kind (privacy and action), when it ran.
  out['strongest'] = report.get('strongest', {})
  out['anonymized_trained_against'] = {
      t: mean_top1(report, data='anonymized', task=t, roles=('trained_against',))
      for t in TASKS}
  out['noise'] = [
      {'sigma': s, **{t: mean_top1(report, data='noise', task=t, roles=HELD_OUT_ROLES, sigma=s)
                      for t in TASKS}} for s in noise_sigmas(report)]
  out['recon_rmse'] = report['recon_rmse']
  # Classifiers left out above because they did not learn the original data.
  out['left_out'] = list((report.get('learning') or {}).get('flagged', []))
  return out


def _pct(value) -> str:
  return '-' if value is None or (isinstance(value, float) and math.isnan(value)) \
      else f'{100 * value:.1f}'


def _num(value, digits: int = 4) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return lines


def _strongest_lines(report: dict) -> list[str]:
  """report.md's lead: the strongest retrained attacker of the suite per task and data kind."""
  strongest = report.get('strongest')
  if not strongest:
    return []
  chance = (report.get('attacks') or {}).get('chance') or {}
  lines = ['## Strongest attacker (retrained on each version of the data)', '',
           'Every attacker of the suite is fitted on that version\'s training split and scored '
           'on its test split; the strongest is the one an auditor of the published data would '
           f"use. Chance: privacy {_pct(chance.get('privacy'))}, action "
           f"{_pct(chance.get('action'))}.", '']
  rows = []
  for data, block in strongest.items():
    for task in TASKS:
      best = (block or {}).get(task)
      if best:
        rows.append((data, task, best['attacker'], best['metric'], _pct(best['value'])))
  lines += _table(('data', 'task', 'attacker', 'metric', 'value (%)'), rows)
  utility = report.get('utility') or {}
  if utility.get('skipped'):
    lines += ['', f"Utility: {utility['skipped']}."]
  else:
    div = (utility.get('diversity') or {}).get('ratio')
    tto = (utility.get('train_on_anonymized') or {}).get('best') or {}
    lines += ['', f'Within-action diversity kept: {_num(div, 3)} (1 = all, 0 = one prototype '
              'per action). Action top-1 on original test data of the best suite attacker '
              f"trained on original / anonymized data: {_pct(tto.get('original'))} / "
              f"{_pct(tto.get('anonymized'))}." + _retrained_on_original(utility)]
  fid = report.get('fidelity')
  if fid:
    lines += ['', f"Fidelity: RMSE {_num(fid.get('rmse'))}, MPJPE {_num(fid.get('mpjpe'))}, "
              f"bone std over time {_num(fid.get('bone_std_changed'))} (original "
              f"{_num(fid.get('bone_std_original'))}), jitter ratio "
              f"{_num(fid.get('jitter_ratio'), 2)}."]
  return lines + ['']


def _ci_pct(ci) -> str:
  return '-' if not ci or ci[0] is None else f'[{_pct(ci[0])}, {_pct(ci[1])}]'


def _yes_no(value) -> str:
  return '-' if value is None else ('yes' if value else '**no**')


def _learning_lines(report: dict) -> list[str]:
  """Which classifiers the headline leaves out because they never learned, and why."""
  learning = report.get('learning') or {}
  flagged = learning.get('flagged') or []
  if not flagged and not learning.get('unverified'):
    return []
  lines = ['']
  for f in flagged:
    lines.append(f"- **Left out, did not learn:** `{f['bank']}` seed {f['seed']} ({f['task']}, "
                 f"{f['role']}): {f['why']}.")
  for u in learning.get('unverified') or []:
    lines.append(f"- Unverified: `{u['bank']}` seed {u['seed']} ({u['task']}, {u['role']}) has "
                 'no classifier of its recipe trained on the original data to show it learns.')
  if flagged and all(summarize(report)['original'][t] is None for t in TASKS
                     if any(f['task'] == t for f in flagged)):
    lines.append('- No network of a flagged task learned: read the strongest attacker above, '
                 'not this table, for that task.')
  lines += ['', f"Rule: {learning.get('rule', LEARNING_RULE)}"]
  return lines


def _retrained_on_original(utility: dict) -> str:
  """' The networks retrained on anonymized data, tested on the original: ...' (or '')."""
  banks = (utility.get('train_on_anonymized') or {}).get('retrained_banks') or []
  if not banks:
    return ''
  return (' The networks retrained on anonymized data, tested on the original test data: ' +
          ', '.join(f"{b['model']} seed {b['seed']} {_pct(b['top1'])}" for b in banks) + '.')


def guarantee_line(guarantee: dict | None) -> str:
  """One line on the fit's formal guarantee (report.md, the anonymize command)."""
  if not guarantee or not guarantee.get('private'):
    if guarantee and guarantee.get('noise_multiplier') == 0.0:
      return ('**Differential privacy:** none (the private fit without noise, epsilon = inf: '
              'for comparison only).')
    return ('**Differential privacy:** none; privacy rests on the measured attackers below '
            '(anonymizer.epsilon turns a person-level guarantee on).')
  return (f"**Differential privacy:** the fitted anonymizer is ({guarantee['spent_epsilon']:.3g}, "
          f"{guarantee['delta']:.3g})-DP with one {guarantee['unit']} as the unit "
          f"({guarantee['adjacency']}; {guarantee['accountant']}, noise multiplier "
          f"{guarantee['noise_multiplier']:.3g}). Each released sequence also carries its own "
          'predicted action and duration.')


def render_markdown(report: dict) -> str:
  """report.md: headline, chance, leakage before, after by role, baselines, agreement, timing."""
  ds, summary = report['dataset'], summarize(report)
  rmse = report['recon_rmse']
  privacy = ds['privacy_target']
  lines = ['# Privacy evaluation', '',
           f"Dataset `{ds['path']}`: {ds['num_train']} train / {ds['num_test']} test samples; "
           f"privacy target: **{privacy}**. Accuracies are top-1 in percent on the test split.",
           '']
  lines += [guarantee_line(report.get('differential_privacy')), '']
  if (report.get('run') or {}).get('privacy_only'):
    lines += [f"**Privacy only:** {report['run']['privacy_only']}.", '']
  lines += _strongest_lines(report)
  lines += ['## Headline: classifiers the anonymizer never saw', '',
           'Mean over the held-out classifiers (`holdout_seed`, `holdout_arch`); the retrained '
           'attacker is trained from scratch on anonymized training data.', '']
  anonymized = ('anonymized (bones retargeted first)'
                if (report.get('run') or {}).get('retarget_first') else 'anonymized')
  rows = [('chance (majority class)', _pct(report['chance']['action']),
           _pct(report['chance']['privacy']), '-'),
          ('original', _pct(summary['original']['action']),
           _pct(summary['original']['privacy']), _num(0.0)),
          (anonymized, _pct(summary['anonymized']['action']),
           _pct(summary['anonymized']['privacy']), _num(rmse.get('anonymized'))),
          (f'{anonymized}, retrained attacker', _pct(summary['anonymized_retrained']['action']),
           _pct(summary['anonymized_retrained']['privacy']), _num(rmse.get('anonymized')))]
  if any(e['data'] == 'retarget' for e in report['evaluations']):
    rows.append(('bone-length retargeting', _pct(summary['retarget']['action']),
                 _pct(summary['retarget']['privacy']), _num(rmse.get('retarget'))))
  noise_rmse = {round(n['sigma'], 9): n['rmse'] for n in rmse.get('noise', [])}
  for n in summary['noise']:
    rows.append((f"noise sigma={n['sigma']:g}", _pct(n['action']), _pct(n['privacy']),
                 _num(noise_rmse.get(round(n['sigma'], 9)))))
  lines += _table(('data', 'action top-1', f'{privacy} top-1', 'recon RMSE'), rows)
  lines += _learning_lines(report)

  lines += ['', '## Leakage of the original data', '']
  original = [e for e in report['evaluations'] if e['data'] == 'original']
  lines += _table(('task', 'model', 'seed', 'role', 'top-1', 'top-5', '95% CI by people',
                   'learned'),
                  [(e['task'], e['model'], e['seed'], e['role'], _pct(e['top1']),
                    _pct(e['top5']), _ci_pct(e.get('ci')), _yes_no(e.get('learned')))
                   for e in original])

  lines += ['', '## After anonymization, by role', '',
            '`trained_against` numbers are white-box (the anonymizer optimised against that '
            'classifier); read the other roles for privacy.', '']
  def key(e):
    return e['task'], e.get('bank', e['model']), e['seed'], e['role']
  before = {key(e): e['top1'] for e in original}
  after = sorted((e for e in report['evaluations'] if e['data'] == 'anonymized'),
                 key=lambda e: (TASKS.index(e['task']), ROLES.index(e['role'])))
  lines += _table(('task', 'role', 'model', 'seed', 'original top-1', 'anonymized top-1',
                   'anonymized top-5'),
                  [(e['task'], e['role'], e['model'], e['seed'],
                    _pct(before.get(key(e))),
                    _pct(e['top1']), _pct(e['top5'])) for e in after])

  baseline_rows = [e for e in report['evaluations'] if e['data'] in ('noise', 'retarget')]
  if baseline_rows:
    lines += ['', '## Baselines, per held-out classifier', '']
    lines += _table(('data', 'sigma', 'task', 'role', 'model', 'seed', 'top-1', 'top-5'),
                    [(e['data'], '-' if e['sigma'] is None else f"{e['sigma']:g}", e['task'],
                      e['role'], e['model'], e['seed'], _pct(e['top1']), _pct(e['top5']))
                     for e in baseline_rows])

  for task, block in report.get('agreement', {}).items():
    models = block['models']
    if len(models) < 2:
      continue
    lines += ['', f'## Agreement between {task} classifiers on the original data', '']
    lines += _table(['', *models], [(m, *(f'{100 * v:.1f}' for v in row))
                                    for m, row in zip(models, block['matrix'])])

  if report.get('timing'):
    lines += ['', '## Timing (seconds)', '']
    lines += _table(('stage', 'seconds'), [(k, _num(v, 1) if isinstance(v, (int, float))
                                            else v) for k, v in report['timing'].items()])
  return '\n'.join(lines) + '\n'


def write_report(report: dict, workdir_or_json, md_path=None) -> None:
  """Writes report.json and report.md atomically (the markdown next to the JSON by default)."""
  json_path = os.fspath(workdir_or_json)
  if os.path.isdir(json_path):
    json_path = os.path.join(json_path, 'report.json')
  md_path = md_path or os.path.splitext(json_path)[0] + '.md'
  write_json(report, json_path)
  text = render_markdown(report)

  def write(tmp):
    with open(tmp, 'w') as f:
      f.write(text)

  atomic_write(md_path, write, overwrite=True)
