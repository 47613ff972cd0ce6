"""Table 4 row etri-ae-adv: ETRI-activity3D gender, auto-encoder anonymizer.

Adversarial anonymization (Algorithm 1, k=1): one action classifier, one adversary.
Table 4: lr min-step 0.0018, lr max-step 0.003, batch 24, alpha 0.1, beta 0.0067; SGD, momentum 0.9.
table4.py gives the settings the table leaves out (from the reference code) and why the loss is
weighted MSE - alpha*H + beta*CE.
The reference code's ETRI adversarial runs train for 40 epochs (steps at 10, 20).

Data: data/etri_gender.npz, made by

  python -m skeleton_anon.prepare --source=etri_csv --input=ETRI_CSV_DIR \
      --gender_file=ETRI_CSV_DIR/gender_age.txt --split=by_subject --test_fraction=0.33 \
      --output=data/etri_gender.npz

then

  python -m skeleton_anon.main --config=configs/etri_ae_adv.py --workdir=runs/etri_ae_adv
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = table4.etri()
  table4.autoencoder(c, dataset='etri')
  table4.adversarial_row(c, lr=0.0018, privacy_lr=0.003, batch_size=24,
                         alpha=0.1, beta=0.0067, epochs=40)
  return c
