"""The alpha/beta trade-off of the paper's Table 5 (Figure 4): six adversarial ETRI gender runs.

Residual anonymizer, adversarial anonymization with k = 2 (two min steps per max step), lr 0.0018
for the min step and 0.0030 for the max step, batch 24 as etri-res-adv; one run per (alpha, beta)
row of Table 5. The six runs share their pretrained classifiers (trained once, in the first run).

  python -m skeleton_anon.prepare --source=etri_csv --input=ETRI_CSV_DIR \
      --gender_file=ETRI_CSV_DIR/gender_age.txt --split=by_subject --test_fraction=0.33 \
      --output=data/etri_gender.npz
  python -m skeleton_anon.sweep --config=configs/table5_sweep.py --workdir=runs/table5

Runs land in runs/table5/<point>/, the plot across them in runs/table5/sweep.png. `--config.x=y`
overrides apply to every run (e.g. --config.data.path=FILE.npz).
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top

# (alpha, beta) of Table 5's rows; beta weighs the action loss (see table4.py).
TABLE5 = ((0.0067, 0.0067), (0.0333, 0.0333), (0.1000, 0.0067), (0.1667, 0.0067),
          (0.2333, 0.0067), (0.3000, 0.0067))


def get_config():
  c = table4.etri()
  table4.residual(c)
  table4.adversarial_row(c, lr=0.0018, privacy_lr=0.0030, batch_size=24, alpha=TABLE5[0][0],
                         beta=TABLE5[0][1], k=2, epochs=40)
  c.sweep = ml_collections.ConfigDict(dict(
      parameters=['anonymize.alpha', 'anonymize.beta'],
      points=[list(p) for p in TABLE5],
      names=[f'alpha{a:g}_beta{b:g}' for a, b in TABLE5],
      share_pretrained=True,
      title='Table 5: held-out accuracy vs (alpha, beta)'))
  return c
