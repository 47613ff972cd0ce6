"""Table 4 row ntu-res-adv: NTU60 cross-view identity, residual anonymizer.

Adversarial anonymization (Algorithm 1, k=1): one action classifier, one adversary.
Table 4: lr min-step 0.0018, lr max-step 0.003, batch 24, alpha 0.1, beta 0.0067; SGD, momentum 0.9.
table4.py gives the settings the table leaves out (from the reference code) and why the loss is
weighted MSE - alpha*H + beta*CE.

Data: data/ntu60_xview.npz, made by

  python -m skeleton_anon.prepare --source=ntu_raw --input=nturgb+d_skeletons/ \
      --missing_list=NTU_RGBD_samples_with_missing_skeletons.txt --split=ntu_xview \
      --output=data/ntu60_xview.npz

then

  python -m skeleton_anon.main --config=configs/ntu_res_adv.py --workdir=runs/ntu_res_adv
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = table4.ntu()
  table4.residual(c)
  table4.adversarial_row(c, lr=0.0018, privacy_lr=0.003, batch_size=24,
                         alpha=0.1, beta=0.0067)
  return c
