"""Small real sets for the small-data regime: a 10-person MSRC-12 subset.

    python studies/subsets.py [--data_dir=../shared/data] [--out=runs/data]

Users' own sets are often 10 people with 10-20 actions and a few repetitions each, and a method
that only works on 30 people x 10 repetitions helps none of them. The subset keeps 10 of MSRC-12's
30 people (every third subject id, so no choice by hand) and, per person and gesture, the first
`repetitions` (3) repetitions of the person's first recording of that gesture. The split is the
full set's own rule applied to the kept repetitions: repetition k % 3 == 2 is test, so each
person-gesture has two training sequences and one test sequence (closed-set re-identification).

The file is written under --out (runs/ is ignored by git): real people's data is never copied
into the project. `msrc12_subset()` is what studies/privacy.py calls to make it on demand.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBSET_NAME = 'msrc12_10p.npz'


def subset_index(subject: np.ndarray, action: np.ndarray, names: np.ndarray, *,
                 people: int = 10, repetitions: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """(indices kept, their split 0/1) for `people` subjects and <= `repetitions` per gesture.

  Names are MSRC-12's '<recording>_r<k>' (recording = instruction modality, gesture, person).
  """
  ids = np.unique(subject)
  step = max(1, len(ids) // people)
  kept_people = set(ids[::step][:people].tolist())
  first_recording: dict[tuple[int, int], str] = {}
  kept, split = [], []
  count: dict[tuple[int, int], int] = {}
  for i in range(len(subject)):
    s, a = int(subject[i]), int(action[i])
    if s not in kept_people:
      continue
    recording = str(names[i]).rsplit('_r', 1)[0]
    if first_recording.setdefault((s, a), recording) != recording:
      continue
    k = count.get((s, a), 0)
    if k >= repetitions:
      continue
    count[(s, a)] = k + 1
    kept.append(i)
    split.append(1 if k % 3 == 2 else 0)
  return np.asarray(kept, np.int64), np.asarray(split, np.int8)


def msrc12_subset(source: str, destination: str, *, people: int = 10,
                  repetitions: int = 3) -> str:
  """Writes the subset of the MSRC-12 npz `source` to `destination` (kept if already there)."""
  if os.path.exists(destination):
    return destination
  with np.load(source, allow_pickle=False) as d:
    arrays = {k: d[k] for k in d.files}
  index, split = subset_index(arrays['subject'], arrays['action'], arrays['names'],
                              people=people, repetitions=repetitions)
  out = {}
  for key, value in arrays.items():
    out[key] = value[index] if value.ndim >= 1 and len(value) == len(arrays['x']) else value
  out['split'] = split
  # Subjects renumbered 0..people-1 so that chance and the class count are the subset's own.
  _, out['subject'] = np.unique(out['subject'], return_inverse=True)
  out['subject'] = out['subject'].astype(np.int32)
  os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
  tmp = destination + '.tmp.npz'
  np.savez(tmp, **out)
  os.replace(tmp, destination)
  return destination


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'data'))
  args = parser.parse_args(argv)
  source = os.path.join(args.data_dir, 'msrc12.npz')
  if not os.path.exists(source):
    print(f'{source} not found: nothing to make')
    return
  path = msrc12_subset(source, os.path.join(args.out, SUBSET_NAME))
  with np.load(path) as d:
    print(f"{path}: {len(d['x'])} sequences, {len(np.unique(d['subject']))} people, "
          f"{len(np.unique(d['action']))} gestures, {int((d['split'] == 0).sum())} train / "
          f"{int((d['split'] == 1).sum())} test")


if __name__ == '__main__':
  main()
