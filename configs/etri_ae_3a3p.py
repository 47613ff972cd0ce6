"""Table 4 row etri-ae-3a3p: ETRI-activity3D gender, auto-encoder anonymizer.

Ensemble anonymization (Algorithm 2) against 3 action and 3 privacy classifiers.
Table 4: lr min-step 0.00066, batch 12, alpha 0.0045, beta 0.0182; SGD, momentum 0.9.
table4.py gives the settings the table leaves out (from the reference code) and why the loss is
weighted MSE - alpha*H + beta*CE.

Data: data/etri_gender.npz, made by

  python -m skeleton_anon.prepare --source=etri_csv --input=ETRI_CSV_DIR \
      --gender_file=ETRI_CSV_DIR/gender_age.txt --split=by_subject --test_fraction=0.33 \
      --output=data/etri_gender.npz

then

  python -m skeleton_anon.main --config=configs/etri_ae_3a3p.py --workdir=runs/etri_ae_3a3p
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = table4.etri()
  table4.autoencoder(c, dataset='etri')
  table4.ensemble_row(c, size=3, lr=0.00066, batch_size=12, alpha=0.0045,
                      beta=0.0182)
  return c
