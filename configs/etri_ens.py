"""The paper's main result: ETRI-activity3D gender anonymization with the residual anonymizer and
the ensemble of 3 action (MS-G3D) and 3 gender (MS-G3D without G3D) classifiers (etri-res-3a3p).

  python -m skeleton_anon.prepare --source=etri_csv --input=ETRI_CSV_DIR \
      --gender_file=ETRI_CSV_DIR/gender_age.txt --split=by_subject --test_fraction=0.33 \
      --output=data/etri_gender.npz
  python -m skeleton_anon.main --config=configs/etri_ens.py --workdir=runs/etri_ens
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  return table4.get_config('etri_res_3a3p')
