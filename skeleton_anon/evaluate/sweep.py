"""Gathers several runs' report.json into one plot (ensemble size, alpha/beta trade-off).

  python -m skeleton_anon.evaluate.sweep --runs DIR1 DIR2 DIR3 --out sweep.png

Each DIR is a workdir holding report.json (or the report.json path itself). The x axis is labelled
from each report's run facts (e.g. 1a1p, 2a2p, 3a3p), else from the directory name.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from skeleton_anon.evaluate.plots import plot_sweep, sweep_label
from skeleton_anon.evaluate.report import load_report


def gather(run_paths: Sequence[str]) -> tuple[list[dict], list[str]]:
  """Loads each run's report; returns (reports, labels), in the order given."""
  reports, labels = [], []
  for run in run_paths:
    path = os.path.join(run, 'report.json') if os.path.isdir(run) else run
    if not os.path.exists(path):
      raise FileNotFoundError(f'{path}: no report.json (has the evaluate stage run?)')
    report = load_report(path)
    reports.append(report)
    name = os.path.basename(os.path.normpath(os.path.dirname(os.path.abspath(path))))
    labels.append(sweep_label(report, name))
  return reports, labels


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--runs', nargs='+', required=True, help='workdirs or report.json files')
  parser.add_argument('--out', required=True, help='PNG to write')
  parser.add_argument('--title', default='Accuracy vs ensemble size')
  args = parser.parse_args(argv)
  try:
    reports, labels = gather(args.runs)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(plot_sweep(reports, labels, args.out, title=args.title))
  return 0


if __name__ == '__main__':
  sys.exit(main())
