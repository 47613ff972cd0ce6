"""The real sets every study reports on, and where their files are (made on demand).

    case -> (file, privacy target, overrides)

msrc12 is 30 people x 12 gestures with the file's own closed-set split; msrc12_10p is the
10-person subset of studies/subsets.py (the small-data regime of users' own sets: 10 people,
<= 3 repetitions per gesture); KGBD is one action (walking): privacy-only runs.
"""

from __future__ import annotations

import ast
import json
import os

from subsets import SUBSET_NAME, msrc12_subset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    'msrc12_subject': ('msrc12.npz', 'subject', []),
    'msrc12_10p_subject': (SUBSET_NAME, 'subject', []),
    'kgbd_subject': ('kgbd_dev.npz', 'subject', ['--config.data.split_rule=last_per_subject']),
    'kgbd_gender': ('kgbd_dev.npz', 'gender', ['--config.data.split_rule=by_subject',
                                               '--config.data.test_fraction=0.3333']),
}


def case_path(case: str, data_dir: str) -> str | None:
  """The case's file (the subset is written under runs/data from msrc12.npz), or None."""
  file_name = CASES[case][0]
  if file_name == SUBSET_NAME:
    source = os.path.join(data_dir, 'msrc12.npz')
    if not os.path.exists(source):
      return None
    return msrc12_subset(source, os.path.join(ROOT, 'runs', 'data', SUBSET_NAME))
  path = os.path.realpath(os.path.join(data_dir, file_name))
  return path if os.path.exists(path) else None


def present_cases(cases: str, data_dir: str):
  """(case, file) for each of the comma-separated `cases` whose file is in data_dir; the others
  are reported as skipped."""
  for case in cases.split(','):
    path = case_path(case, os.path.abspath(data_dir))
    if path is None:
      print(f'{case}: its file is not in {data_dir}, skipped')
      continue
    yield case, path


def parse_knobs(text: str) -> dict:
  """'components=512,output_duration="drawn"' -> {'components': 512, ...} (Python literals)."""
  found = {}
  for item in filter(None, text.split(',')):
    key, value = item.split('=', 1)
    found[key.strip()] = ast.literal_eval(value)
  return found


def save_results(out: str, file_name: str, results: dict) -> None:
  """A study's results as OUT/FILE_NAME (indented JSON)."""
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, file_name), 'w') as f:
    json.dump(results, f, indent=1)
