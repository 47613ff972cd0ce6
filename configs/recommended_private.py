"""recommended.py with a formal bound: the style prior fitted with person-level differential
privacy, (epsilon, delta) = (8, 1e-5) by default (train/private_prior.py).

  python -m skeleton_anon.main --config=configs/recommended_private.py --workdir=runs/mine \
      --config.data.path=FILE.npz --config.anonymizer.epsilon=4

The spent epsilon, delta and the unit (a person) are in anonymizer.json, report.json
(`differential_privacy`) and report.md; `anonymize` prints them. The noise is drawn from the
operating system's entropy, so two runs give two different priors, and a finished fit is
reloaded, never refitted. On fewer than a few hundred people the noise dominates the actions'
means at epsilon = 8 (docs/privacy.md has the measured rows): it is the guarantee's price.
`:seeds=N` works as in recommended.py.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recommended  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config(arg: str = ''):
  c = recommended.get_config(arg)
  c.anonymizer.arch = 'style_prior'
  c.anonymizer.knobs = ml_collections.ConfigDict(dict(frames=32, frequencies=3, clip=0.5,
                                                      vary_body=1.0))
  c.anonymizer.retarget_first = False
  c.anonymizer.epsilon = 8.0
  c.anonymizer.delta = 1e-5
  return c
