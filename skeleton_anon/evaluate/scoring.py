"""Scores classifier banks on one version of the test data and turns them into report rows.

A bank is S classifiers of one architecture (train.pretrain.Bank: arch, task, role, seeds); the
caller supplies `predict(bank, x, lengths) -> logits [S, N, K]`, so this module needs no devices
and is tested on plain arrays.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from skeleton_anon.evaluate import metrics
from skeleton_anon.evaluate.leakage import agreement_matrix, top1_top5
from skeleton_anon.evaluate.report import evaluation_row

Predict = Callable[[object, np.ndarray, np.ndarray], np.ndarray]


def bank_rows(bank_name: str, bank, logits: np.ndarray, labels: np.ndarray, *, data: str,
              sigma: float | None = None, groups: np.ndarray | None = None) -> list[dict]:
  """One report row per member of `bank` from its logits [S, N, K]; with `groups` (the test
  samples' people) each row has its 95% top-1 interval by people (cluster bootstrap)."""
  logits = np.asarray(logits)
  if logits.ndim != 3 or logits.shape[0] != len(bank.seeds):
    raise ValueError(f'bank {bank_name}: expected logits [{len(bank.seeds)}, N, K], '
                     f'got {logits.shape}')
  rows = []
  for member, seed in enumerate(bank.seeds):
    top1, top5 = top1_top5(logits[member], labels)
    ci = None
    known = np.asarray(labels) >= 0
    if groups is not None and known.any():
      # The hits top1_top5 counts (argmax; unknown labels left out), resampled by people.
      hits = (np.argmax(logits[member][known], axis=-1) == labels[known]).astype(np.float64)
      ci = metrics.bootstrap_ci(lambda weights: metrics.weighted_mean(hits, weights),
                                len(hits), groups=np.asarray(groups)[known], seed=int(seed))
    rows.append(evaluation_row(data=data, sigma=sigma, task=bank.task, model=bank.arch,
                               seed=seed, role=bank.role, top1=top1, top5=top5,
                               bank=bank_name, ci=ci))
  return rows


def score_banks(banks: Mapping[str, object], predict: Predict, x: np.ndarray,
                lengths: np.ndarray, labels: Mapping[str, np.ndarray], *, data: str,
                sigma: float | None = None, roles: Iterable[str] | None = None,
                groups: np.ndarray | None = None) -> tuple[list[dict], dict[str, np.ndarray]]:
  """Rows for every bank (optionally only some roles) on (x, lengths), and the logits.

  Args:
    banks: name -> bank.
    predict: (bank, x, lengths) -> logits [S, N, K].
    labels: task ('action' / 'privacy') -> true labels [N].
    data, sigma: the report's data kind and noise level of x.
    roles: keep only banks whose role is listed.
    groups: the test samples' people, for intervals by people (bank_rows).

  Returns:
    (rows, {bank name: logits}).
  """
  roles = None if roles is None else tuple(roles)
  rows, logits_by_bank = [], {}
  for name, bank in banks.items():
    if roles is not None and bank.role not in roles:
      continue
    logits = predict(bank, x, lengths)
    logits_by_bank[name] = logits
    rows += bank_rows(name, bank, logits, labels[bank.task], data=data, sigma=sigma,
                      groups=groups)
  return rows, logits_by_bank


def agreement_by_task(banks: Mapping[str, object], logits_by_bank: Mapping[str, np.ndarray],
                      tasks: Sequence[str] = ('action', 'privacy')) -> dict:
  """Pairwise agreement between every scored classifier of each task (Tables 1 and 2).

  Returns {task: {'models': ['<bank>/<seed>', ...], 'matrix': [[...]]}} for tasks with at least
  one classifier.
  """
  out = {}
  for task in tasks:
    names, preds = [], []
    for name, logits in logits_by_bank.items():
      bank = banks[name]
      if bank.task != task:
        continue
      for member, seed in enumerate(bank.seeds):
        names.append(f'{name}/{seed}')
        preds.append(np.argmax(np.asarray(logits[member]), axis=-1))
    if names:
      out[task] = {'models': names,
                   'matrix': agreement_matrix(np.stack(preds)).round(4).tolist()}
  return out
