"""Accuracy against ensemble size (the paper's Figure 3): etri-res-1a1p, -2a2p and -3a3p.

Each point is the Table 4 row of that size (its lr and batch size); all three are measured by the
same held-out classifiers (seeds 3 and 103, the "fourth classifier"), pretrained once in the first
run and reused by the others.

  python -m skeleton_anon.prepare --source=etri_csv --input=ETRI_CSV_DIR \
      --gender_file=ETRI_CSV_DIR/gender_age.txt --split=by_subject --test_fraction=0.33 \
      --output=data/etri_gender.npz
  python -m skeleton_anon.sweep --config=configs/ensemble_size_sweep.py --workdir=runs/ens_size

Runs land in runs/ens_size/1a1p, 2a2p, 3a3p; the plot across them in runs/ens_size/sweep.png.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top

# Table 4's residual ensemble rows: (size, lr min-step, batch size); alpha and beta are shared.
ROWS = ((1, 0.00075, 10), (2, 0.0006, 8), (3, 0.0006, 12))
ALPHA, BETA = 0.0333, 0.0067


def _seeds(first: int, size: int) -> list[int]:
  return list(range(first, first + size))


def get_config():
  c = table4.etri()
  table4.residual(c)
  size, lr, batch_size = ROWS[0]
  table4.ensemble_row(c, size=size, lr=lr, batch_size=batch_size, alpha=ALPHA, beta=BETA)
  c.sweep = ml_collections.ConfigDict(dict(
      parameters=['classifiers.action.seeds', 'classifiers.privacy.seeds', 'anonymize.lr',
                  'anonymize.batch_size'],
      points=[[_seeds(table4.ACTION_SEED0, n), _seeds(table4.PRIVACY_SEED0, n), lr, batch]
              for n, lr, batch in ROWS],
      names=[f'{n}a{n}p' for n, _, _ in ROWS],
      share_pretrained=True,
      title='Accuracy vs ensemble size (held-out classifiers)'))
  return c
