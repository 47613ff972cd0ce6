"""The paper's figures as PNGs: trade-off (Fig. 4), training curves (Fig. 5), ensemble size (Fig 3).

Matplotlib with the Agg backend (no display needed); every function writes one PNG atomically and
returns its path.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend first)

from skeleton_anon.data.dataset import atomic_write  # noqa: E402
from skeleton_anon.evaluate.report import TASKS, summarize  # noqa: E402


def _save(fig, path) -> str:
  path = os.fspath(path)

  def write(tmp):
    fig.savefig(tmp, format='png', dpi=110, bbox_inches='tight')

  try:
    atomic_write(path, write, overwrite=True, suffix='.png')
  finally:
    plt.close(fig)
  return path


def _pct(v):
  return None if v is None else 100.0 * v


def suite_points(strongest: Mapping) -> dict:
  """{data kind: {'action', 'privacy'}} from the suite's strongest attacker per data kind."""
  out = {}
  for kind, block in (strongest or {}).items():
    values = {t: ((block or {}).get(t) or {}).get('value') for t in TASKS}
    out[kind] = values
  return out


def plot_tradeoff(report: dict, path) -> str:
  """Privacy vs action accuracy (noise sweep, retargeting, anonymizer) and both vs RMSE.

  Left: each point is one kind of data scored by the held-out classifiers; the anonymizer's
  retrained attacker is shown separately. Right: the paper's Figure 4 axes, accuracy against
  reconstruction error.
  """
  summary = summarize(report)
  privacy = report['dataset']['privacy_target']
  fig, (ax, ax_rmse) = plt.subplots(1, 2, figsize=(12, 5))

  noise = [n for n in summary['noise'] if n['action'] is not None and n['privacy'] is not None]
  if noise:
    ax.plot([_pct(n['privacy']) for n in noise], [_pct(n['action']) for n in noise], 'o-',
            color='tab:gray', label='random noise (held-out)')
    for n in noise:
      ax.annotate(f"σ={n['sigma']:g}", (_pct(n['privacy']), _pct(n['action'])),
                  textcoords='offset points', xytext=(4, 4), fontsize=8, color='tab:gray')
  judges = 'held-out classifiers'
  points = [('original', summary['original'], 'k', 's'),
            ('bone-length retargeting', summary['retarget'], 'tab:purple', 'D'),
            ('anonymized (held-out)', summary['anonymized'], 'tab:red', '*'),
            ('anonymized (retrained attacker)', summary['anonymized_retrained'],
             'tab:orange', 'P')]
  if any(v is None for v in summary['original'].values()) and summary['strongest']:
    # No network learned the original data (judge_learning): the suite's retrained attackers
    # are the only honest judges, so the points are theirs.
    judges = "suite's strongest attackers (no held-out network learned)"
    suite = suite_points(summary['strongest'])
    points = [('original (suite)', suite.get('original'), 'k', 's'),
              ('bone-length retargeting (suite)', suite.get('retarget'), 'tab:purple', 'D'),
              ('anonymized (suite, retrained)', suite.get('anonymized'), 'tab:red', '*')]
    points = [p for p in points if p[1] is not None]
  for label, value, color, marker in points:
    if value['action'] is not None and value['privacy'] is not None:
      ax.scatter(_pct(value['privacy']), _pct(value['action']), s=120, color=color,
                 marker=marker, label=label, zorder=3)
  ax.axvline(100 * report['chance']['privacy'], ls='--', color='tab:blue', lw=1,
             label=f'{privacy} chance')
  ax.axhline(100 * report['chance']['action'], ls=':', color='tab:green', lw=1,
             label='action chance')
  ax.set_xlabel(f'{privacy} top-1 accuracy (%)  [lower is more private]')
  ax.set_ylabel('action top-1 accuracy (%)  [higher is more useful]')
  ax.set_title(f'Privacy vs utility ({judges})')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='best')

  rmse = report['recon_rmse']
  noise_rmse = {round(n['sigma'], 9): n['rmse'] for n in rmse.get('noise', [])}
  xs = [noise_rmse.get(round(n['sigma'], 9)) for n in summary['noise']]
  pairs = [(x, n) for x, n in zip(xs, summary['noise']) if x is not None]
  for task, color in zip(TASKS, ('tab:green', 'tab:blue')):
    name = 'action' if task == 'action' else privacy
    if pairs:
      ax_rmse.plot([x for x, _ in pairs], [_pct(n[task]) for _, n in pairs], 'o--',
                   color=color, alpha=0.6, label=f'noise: {name}')
    if rmse.get('anonymized') is not None and summary['anonymized'][task] is not None:
      ax_rmse.scatter(rmse['anonymized'], _pct(summary['anonymized'][task]), marker='*', s=160,
                      color=color, label=f'anonymized: {name}', zorder=3)
    if rmse.get('retarget') is not None and summary['retarget'][task] is not None:
      ax_rmse.scatter(rmse['retarget'], _pct(summary['retarget'][task]), marker='D', s=70,
                      color=color, label=f'retargeted: {name}', zorder=3)
  if pairs and all(x > 0 for x, _ in pairs):
    ax_rmse.set_xscale('log')
  ax_rmse.set_xlabel('reconstruction RMSE (data units)')
  ax_rmse.set_ylabel('top-1 accuracy (%)')
  ax_rmse.set_title('Accuracy vs reconstruction error')
  ax_rmse.grid(alpha=0.3)
  if ax_rmse.get_legend_handles_labels()[0]:
    ax_rmse.legend(fontsize=8, loc='best')
  return _save(fig, path)


def _metric_groups(history: Sequence[Mapping]) -> dict[str, list[str]]:
  """Splits logged keys into accuracy, reconstruction and loss panels by name."""
  keys = []
  for entry in history:
    for k, v in entry.items():
      if k not in ('epoch', 'step') and isinstance(v, (int, float)) and k not in keys:
        keys.append(k)
  groups = {'accuracy': [], 'reconstruction': [], 'loss': []}
  for k in keys:
    low = k.lower()
    if 'acc' in low:
      groups['accuracy'].append(k)
    elif 'recon' in low or 'rmse' in low or 'mse' in low:
      groups['reconstruction'].append(k)
    else:
      groups['loss'].append(k)
  return {g: ks for g, ks in groups.items() if ks}


def plot_training_curves(history: Sequence[Mapping], path, *,
                         title: str = 'Anonymizer training') -> str:
  """Per-epoch curves from a list of {'epoch': e, '<metric>': value, ...} dicts (Figure 5).

  Keys with 'acc' go in an accuracy panel, keys with 'recon'/'rmse'/'mse' in a reconstruction
  panel, anything else in a loss panel; missing values in some epochs are skipped.
  """
  if not history:
    raise ValueError('history is empty: nothing to plot')
  groups = _metric_groups(history)
  if not groups:
    raise ValueError('history holds no numeric metrics')
  fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
  for ax, (group, keys) in zip(axes[0], groups.items()):
    for k in keys:
      pts = [(e.get('epoch', i + 1), e[k]) for i, e in enumerate(history)
             if isinstance(e.get(k), (int, float)) and math.isfinite(e[k])]
      scale = 100.0 if group == 'accuracy' else 1.0
      ax.plot([p[0] for p in pts], [scale * p[1] for p in pts], 'o-', ms=3, label=k)
    ax.set_xlabel('epoch')
    ax.set_ylabel({'accuracy': 'accuracy (%)', 'reconstruction': 'reconstruction error',
                   'loss': 'loss'}[group])
    ax.set_title(group)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title, y=1.04)
  return _save(fig, path)


def sweep_label(report: dict, fallback: str) -> str:
  """'NaMp' from the report's run facts (ensemble sizes), else alpha/beta, else the fallback."""
  run = report.get('run') or {}
  ens = run.get('ensemble') or {}
  if 'action' in ens and 'privacy' in ens:
    return f"{ens['action']}a{ens['privacy']}p"
  if 'alpha' in run and 'beta' in run:
    return f"α={run['alpha']:g} β={run['beta']:g}"
  return fallback


def plot_sweep(reports: Sequence[dict], labels: Sequence[str], path, *,
               title: str = 'Accuracy vs ensemble size') -> str:
  """One x position per run (e.g. 1a1p, 2a2p, 3a3p): held-out action and privacy accuracy.

  The paper's Figure 3: accuracy of the classifiers not used in training against the number of
  classifiers in the ensemble; the retrained attacker is drawn too when the runs have one.
  """
  if not reports or len(reports) != len(labels):
    raise ValueError('need one label per report and at least one report')
  summaries = [summarize(r) for r in reports]
  privacy = reports[0]['dataset']['privacy_target']
  xs = list(range(len(reports)))
  fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(reports) + 3), 4.5))
  series = [('anonymized', 'action', 'tab:green', 'o-', 'action (held-out)'),
            ('anonymized', 'privacy', 'tab:blue', 'o-', f'{privacy} (held-out)'),
            ('anonymized_retrained', 'privacy', 'tab:orange', 's--',
             f'{privacy} (retrained attacker)'),
            ('anonymized_retrained', 'action', 'tab:olive', 's--', 'action (retrained)')]
  for key, task, color, style, label in series:
    ys = [_pct(s[key][task]) for s in summaries]
    if any(y is not None for y in ys):
      ax.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None],
              style, color=color, label=label)
  ax.axhline(100 * reports[0]['chance']['privacy'], ls='--', color='tab:blue', lw=1,
             alpha=0.6, label=f'{privacy} chance')
  ax.set_xticks(xs, labels)
  ax.set_xlabel('run')
  ax.set_ylabel('top-1 accuracy on anonymized test data (%)')
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return _save(fig, path)
