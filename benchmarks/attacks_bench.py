"""The fast attackers at scale: 10,000 synthetic sequences x 100 frames x 25 joints (issue 10).

    python benchmarks/attacks_bench.py [--subjects=50 --actions=10 --repetitions=5 --views=4]

Target: the whole `fast` suite (features, 1-NN and logistic regression per family, both tasks,
linkage, bootstrap intervals) in under 60 s on 2 CPU cores. Generation is not timed. Prints one
JSON object: sizes, seconds per attacker, total, and the strongest attackers' scores (a sanity
check that the timed run did real work).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skeleton_anon.attacks import data as attack_data, suite  # noqa: E402
from skeleton_anon.data.synthetic import make_synthetic  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--subjects', type=int, default=50)
  parser.add_argument('--actions', type=int, default=10)
  parser.add_argument('--repetitions', type=int, default=5)
  parser.add_argument('--views', type=int, default=4)
  parser.add_argument('--frames', type=int, default=100)
  parser.add_argument('--attackers', default='fast')
  args = parser.parse_args(argv)
  start = time.time()
  ds = make_synthetic(num_subjects=args.subjects, num_actions=args.actions,
                      repetitions=args.repetitions, num_views=args.views,
                      num_frames=args.frames, seed=0)
  generated = time.time() - start
  start = time.time()
  train, test, split = attack_data.attack_split(ds, 'subject', 'random', test_fraction=0.2)
  result = suite.run_suite(train, test, privacy_target='subject', layout=ds.get_layout(),
                           attackers=args.attackers, log=lambda line: None)
  total = time.time() - start
  print(json.dumps({
      'benchmark': 'attacks_fast',
      'samples': ds.num_samples, 'frames': ds.num_frames, 'joints': ds.num_joints,
      'subjects': args.subjects, 'actions': args.actions, 'split': split,
      'seconds_total': round(total, 2), 'seconds_generate_untimed': round(generated, 2),
      'seconds': result['timing'], 'strongest': result['strongest'],
      'cpus': os.cpu_count(), 'machine': platform.machine(),
      'target_seconds': 60, 'within_target': total < 60,
  }, indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
