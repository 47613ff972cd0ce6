"""Table 4 row ntu-ae-adv: NTU60 cross-view identity, auto-encoder anonymizer.

Adversarial anonymization (Algorithm 1, k=1): one action classifier, one adversary.
Table 4: lr min-step 0.05, lr max-step 0.01, batch 30, alpha 0.04, beta 0.1; SGD, momentum 0.9.
table4.py gives the settings the table leaves out (from the reference code) and why the loss is
weighted MSE - alpha*H + beta*CE.
The reference code's config for this row steps both learning rates at epochs 15 and 30.

Data: data/ntu60_xview.npz, made by

  python -m skeleton_anon.prepare --source=ntu_raw --input=nturgb+d_skeletons/ \
      --missing_list=NTU_RGBD_samples_with_missing_skeletons.txt --split=ntu_xview \
      --output=data/ntu60_xview.npz

then

  python -m skeleton_anon.main --config=configs/ntu_ae_adv.py --workdir=runs/ntu_ae_adv
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table4  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = table4.ntu()
  table4.autoencoder(c, dataset='ntu')
  table4.adversarial_row(c, lr=0.05, privacy_lr=0.01, batch_size=30,
                         alpha=0.04, beta=0.1, milestones=(15, 30))
  return c
