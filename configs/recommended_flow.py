"""recommended.py with the learned generator: the flow prior (models/flow_prior.py).

  python -m skeleton_anon.main --config=configs/recommended_flow.py --workdir=runs/mine \
      --config.data.path=FILE.npz --config.data.privacy_target=subject|gender

The same front end, action classifier, encoding and privacy contract as the style prior (the
output depends on the input only through the predicted action, the duration and a seed), but
each performance is drawn from a conditional flow-matching network trained on all training
people at once, in a subspace shared by every action, instead of one Gaussian per action fitted
from that action's ~19 sequences on a 10-person set. Numbers on real data: docs/privacy.md.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recommended  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config(arg: str = ''):
  c = recommended.get_config(arg)      # 'seeds=N': see recommended.network_seeds
  c.anonymizer.arch = 'flow_prior'
  c.anonymizer.knobs = ml_collections.ConfigDict(dict(
      components=96, frames=0, hidden=256, depth=3, embed=32, sample_steps=16, duration=0,
      vary_body=0.0))
  # Flow-matching training: Adam, at least 3000 steps whatever the file's size (seconds on a
  # CPU: the network reads 96 numbers per sequence, not the skeleton).
  a = c.anonymize
  a.optimizer, a.lr, a.weight_decay, a.milestones = 'adam', 1e-3, 0.0, []
  a.batch_size, a.epochs, a.min_steps = 64, 1, 3000
  return c
