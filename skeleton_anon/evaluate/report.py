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
  - fidelity: RMSE, MPJPE, bone-length change and stability, jitter of the anonymized test data.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable, Sequence

from skeleton_anon.data.dataset import atomic_write
from skeleton_anon.evaluate.leakage import mean_or_none

DATA_KINDS = ('original', 'anonymized', 'noise', 'retarget')
TASKS = ('action', 'privacy')
ROLES = ('trained_against', 'holdout_seed', 'holdout_arch', 'retrained')
HELD_OUT_ROLES = ('holdout_seed', 'holdout_arch')


def evaluation_row(*, data: str, task: str, model: str, seed: int, role: str,
                   top1: float, top5: float | None, sigma: float | None = None,
                   bank: str | None = None) -> dict:
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
  return row


def build_report(*, dataset: dict, chance: dict, evaluations: Sequence[dict],
                 recon_rmse: dict, timing: dict, agreement: dict | None = None,
                 run: dict | None = None, attacks: dict | None = None,
                 utility: dict | None = None, fidelity: dict | None = None) -> dict:
  """Assembles report.json's dictionary in the contract's key order."""
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
  if attacks is not None and attacks.get('attacks'):
    report['attacks'] = attacks
    report['strongest'] = attacks['strongest']
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
           roles: Sequence[str] | None = None, sigma: float | None = None) -> list[dict]:
  """The rows of one data kind and task, optionally restricted to roles and a noise sigma."""
  return [e for e in evaluations
          if e['data'] == data and e['task'] == task
          and (roles is None or e['role'] in roles)
          and (sigma is None or (e['sigma'] is not None and math.isclose(e['sigma'], sigma)))]


def mean_top1(report: dict, *, data: str, task: str, roles: Sequence[str] | None = None,
              sigma: float | None = None) -> float | None:
  """Mean top-1 over the selected rows; None when no row matches."""
  rows = select(report['evaluations'], data=data, task=task, roles=roles, sigma=sigma)
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
              f"{_pct(tto.get('anonymized'))}."]
  fid = report.get('fidelity')
  if fid:
    lines += ['', f"Fidelity: RMSE {_num(fid.get('rmse'))}, MPJPE {_num(fid.get('mpjpe'))}, "
              f"bone std over time {_num(fid.get('bone_std_changed'))} (original "
              f"{_num(fid.get('bone_std_original'))}), jitter ratio "
              f"{_num(fid.get('jitter_ratio'), 2)}."]
  return lines + ['']


def render_markdown(report: dict) -> str:
  """report.md: headline, chance, leakage before, after by role, baselines, agreement, timing."""
  ds, summary = report['dataset'], summarize(report)
  rmse = report['recon_rmse']
  privacy = ds['privacy_target']
  lines = ['# Privacy evaluation', '',
           f"Dataset `{ds['path']}`: {ds['num_train']} train / {ds['num_test']} test samples; "
           f"privacy target: **{privacy}**. Accuracies are top-1 in percent on the test split.",
           '']
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

  lines += ['', '## Leakage of the original data', '']
  original = [e for e in report['evaluations'] if e['data'] == 'original']
  lines += _table(('task', 'model', 'seed', 'role', 'top-1', 'top-5'),
                  [(e['task'], e['model'], e['seed'], e['role'], _pct(e['top1']),
                    _pct(e['top5'])) for e in original])

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
