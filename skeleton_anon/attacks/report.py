"""audit.md and the audit's plots, from an audit.json dict.

The markdown leads with the strongest attacker per task (what a reader must know first: how
much an adversary gets), then every attacker's numbers with interval and chance, then fidelity.
Plots: `plots/attackers.png` (each attacker's headline metric against chance, per task) and,
for re-identification, `plots/cmc.png` (the CMC curves).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend first)

from skeleton_anon.attacks.suite import HEADLINE  # noqa: E402
from skeleton_anon.data.dataset import atomic_write  # noqa: E402
from skeleton_anon.evaluate.plots import _save as save_png  # noqa: E402
from skeleton_anon.evaluate.report import write_json  # noqa: E402


def _num(v, digits: int = 3) -> str:
  return '-' if v is None else f'{v:.{digits}f}'


def _ci(ci) -> str:
  return '-' if not ci or ci[0] is None else f'[{ci[0]:.3f}, {ci[1]:.3f}]'


def render_markdown(audit: dict) -> str:
  """audit.md: headline, split, attacker table, fidelity, timing."""
  target = audit['privacy_target']
  what = {'subject': 're-identification', 'gender': 'gender'}[target]
  lines = [f'# Audit of `{audit["data"]}`', '']
  for task, label in (('privacy', f'privacy ({what})'), ('action', 'action (utility)')):
    best = audit['strongest'].get(task)
    if best is None:
      lines.append(f'- **Strongest attacker, {label}:** none (task not measurable on this data)')
      continue
    lines.append(f'- **Strongest attacker, {label}: `{best["attacker"]}`** ({best["family"]}), '
                 f'{best["metric"]} {_num(best["value"])} (95% CI {_ci(best["ci"])}; chance '
                 f'{_num(best["chance"])})')
  split = audit['split']
  lines += ['', f'Split `{split["rule"]}`: {split["num_train"]} training and '
            f'{split["num_test"]} test samples, '
            + ('no person on both sides (across people).' if split.get('across_people') else
               'the same people on both sides (closed set).'),
            'Every attacker was fitted on the training side only and scored on the test side.',
            'Intervals: 95% cluster bootstrap over test people (every sequence of a drawn '
            'person comes along), except linkage, whose interval is over test pairs.',
            '', '| task | attacker | family | metric | value | 95% CI by people | chance |',
            '|---|---|---|---|---|---|---|']
  for r in audit['attacks']:
    lines.append(f'| {r["task"]} | {r["attacker"]} | {r["family"]} | {r["metric"]} | '
                 f'{_num(r["value"])} | {_ci(r["ci"])} | {_num(r.get("chance"))} |')
  for name, why in audit.get('skipped', {}).items():
    lines.append(f'\n`{name}` skipped: {why}.')
  if 'fidelity' in audit:
    lines += ['', f'## Fidelity against `{audit.get("reference")}`', '',
              '| measure | value |', '|---|---|']
    lines += [f'| {k} | {_num(v, 5)} |' for k, v in audit['fidelity'].items()
              if isinstance(v, (int, float)) or v is None]
  best = (audit.get('utility') or {}).get('train_on_anonymized', {}).get('best')
  if best:
    lines += ['', '## Utility: a recognizer trained on this file, tested on the original', '',
              f"Best action attacker trained on this file: {_num(best.get('anonymized'))}; "
              f"trained on the original: {_num(best.get('original'))} (both tested on the "
              'original test split).']
  timing = audit.get('timing', {})
  if timing:
    lines += ['', 'Timing (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in timing.items()
                                             if isinstance(v, (int, float)))]
  return '\n'.join(lines) + '\n'


def plot_attackers(audit: dict, path) -> str:
  """Bar chart: each attacker's headline metric per task, chance as a dashed line."""
  tasks = [t for t in ('privacy', 'action') if audit['strongest'].get(t)]
  fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(6 * max(len(tasks), 1), 4),
                           squeeze=False)
  for ax, task in zip(axes[0], tasks):
    metric = HEADLINE[audit['privacy_target']] if task == 'privacy' else HEADLINE['action']
    rows = [r for r in audit['attacks'] if r['task'] == task and r['metric'] == metric and
            r['value'] is not None]
    names = [r['attacker'] for r in rows]
    values = [r['value'] for r in rows]
    low = [r['value'] - (r['ci'][0] if r['ci'][0] is not None else r['value']) for r in rows]
    high = [(r['ci'][1] if r['ci'][1] is not None else r['value']) - r['value'] for r in rows]
    ax.bar(range(len(rows)), values, yerr=[low, high], color='tab:red' if task == 'privacy'
           else 'tab:blue', alpha=0.8, capsize=3)
    if rows:
      ax.axhline(rows[0]['chance'], color='black', linestyle='--', label='chance')
    ax.set_xticks(range(len(rows)), names, rotation=45, ha='right')
    ax.set_ylim(0, 1.02)
    ax.set_title(f'{task}: {metric}')
    ax.legend(loc='lower right')
  return save_png(fig, path)


def plot_cmc(cmc: dict, path) -> str:
  """CMC curves (top-r accuracy against rank r) of the re-identification attackers."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, curve in cmc.items():
    ax.plot(range(1, len(curve) + 1), curve, marker='.', label=name)
  ax.set_xlabel('rank')
  ax.set_ylabel('identification rate')
  ax.set_ylim(0, 1.02)
  ax.set_title('CMC (re-identification)')
  ax.legend(fontsize=7, loc='lower right')
  return save_png(fig, path)


def write_outputs(audit: dict, out_dir: str) -> list[str]:
  """audit.json, audit.md and the plots into out_dir (each atomically); returns their paths."""
  os.makedirs(os.path.join(out_dir, 'plots'), exist_ok=True)
  paths = [os.path.join(out_dir, 'audit.json'), os.path.join(out_dir, 'audit.md')]
  write_json(audit, paths[0], overwrite=True)
  text = render_markdown(audit)

  def write_md(tmp):
    with open(tmp, 'w') as f:
      f.write(text)

  atomic_write(paths[1], write_md, overwrite=True)
  paths.append(plot_attackers(audit, os.path.join(out_dir, 'plots', 'attackers.png')))
  if audit.get('cmc'):
    paths.append(plot_cmc(audit['cmc'], os.path.join(out_dir, 'plots', 'cmc.png')))
  return paths
