"""Per-performer gender lists: ETRI's gender_age.txt and the public NTU RGB+D gender CSVs
(`P###,M|F`), read into {performer number: 0/1/-1}."""

from __future__ import annotations

import os
import re

import numpy as np

from skeleton_anon.errors import DataError

# Gender words accepted in gender_age.txt (case-insensitive). Letters map male -> 1,
# female -> 0 (the reference code's `gender == 'm'`); a file that already codes gender as 0/1
# keeps its own numbers. Anything else (blank, '-', 'unknown') becomes -1.
_MALE = frozenset({'m', 'male', 'man'})
_FEMALE = frozenset({'f', 'female', 'woman', 'w'})


def parse_gender(token: str) -> int:
  """1 for m/male/man, 0 for f/female/woman/w, 0 or 1 kept as written, -1 otherwise."""
  t = token.strip().strip('"\'').lower()
  if t in _MALE:
    return 1
  if t in _FEMALE:
    return 0
  if t in ('0', '1'):
    return int(t)
  return -1


def performer_id(token: str) -> int | None:
  m = re.fullmatch(r'[Pp]?0*(\d+)', token.strip().strip('"\''))
  return int(m.group(1)) if m else None


def read_gender_file(path) -> dict[int, int]:
  """Performer number (1-based, as in P###) -> gender 0/1/-1 from a gender list (ETRI's
  `gender_age.txt`, an NTU `P###,M` CSV).

  Accepted: tab-separated (whitespace or commas also work) rows, with or without a header. With
  a header, the gender column is the one named gender or sex, and the performer column one named
  id, subject, performer, person or p (without one, row i is performer i). Without a header, a
  row is `id gender [age ...]` when its first field is a performer number (`7`, `P007`),
  otherwise `gender [age ...]` for performer i. Gender values: see `parse_gender`.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(path, 'gender file does not exist')
  with open(path, encoding='utf-8-sig', errors='replace') as f:
    rows = [re.split(r'\t|,|\s+', line.strip()) for line in f if line.strip()]
  if not rows:
    raise DataError(path, 'gender file is empty')
  header = [h.lower() for h in rows[0]]
  gender_col = next((i for i, h in enumerate(header) if h in ('gender', 'sex')), None)
  id_col = None
  if gender_col is not None:
    id_col = next((i for i, h in enumerate(header)
                   if h in ('id', 'subject', 'performer', 'person', 'p', 'pid', 'subject_id',
                            'performer_id', 'subjectid')), None)
    rows = rows[1:]
  out = {}
  for line_no, row in enumerate(rows, start=2 if gender_col is not None else 1):
    if gender_col is None:
      first_is_id = len(row) >= 2 and performer_id(row[0]) is not None and \
          parse_gender(row[0]) == -1
      pid = performer_id(row[0]) if first_is_id else len(out) + 1
      gender = parse_gender(row[1] if first_is_id else row[0])
    else:
      if len(row) <= max(gender_col, id_col or 0):
        raise DataError(path, f'line {line_no}: {len(row)} fields, the header names '
                        f'{len(header)}')
      pid = performer_id(row[id_col]) if id_col is not None else len(out) + 1
      if pid is None:
        raise DataError(path, f'line {line_no}: performer id {row[id_col]!r} is not a number')
      gender = parse_gender(row[gender_col])
    out[pid] = gender
  return out


def genders_of(performers: np.ndarray, table: dict[int, int]) -> tuple[np.ndarray, str | None]:
  """(int32 gender per sample, -1 where the table has no entry; a note naming the performers
  without one, or None) for 1-based performer numbers."""
  gender = np.asarray([table.get(int(p), -1) for p in performers], np.int32)
  unknown = sorted({int(p) for p, g in zip(performers, gender) if g < 0})
  note = None
  if unknown:
    note = (f'gender unknown (-1) for performers {unknown[:10]}'
            + (' ...' if len(unknown) > 10 else ''))
  return gender, note
