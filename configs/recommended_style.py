"""recommended.py with the closed-form style prior (models/style_prior.py) instead of the flow.

  python -m skeleton_anon.main --config=configs/recommended_style.py --workdir=runs/mine \
      --config.data.path=FILE.npz --config.data.privacy_target=subject|gender

Until 2026-12-07 the recommended anonymizer: the same front end and privacy contract, but each
performance is drawn from one Gaussian per action, fitted from that action's own sequences (about
19 on a 10-person set), with the median body for everyone. Nothing is trained, so it is the
fastest private release; recognizers trained on it transfer worse to real people (docs/privacy.md).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recommended  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config(arg: str = ''):
  c = recommended.get_config(arg)      # 'seeds=N': see recommended.network_seeds
  recommended.use_style_prior(c)
  return c
