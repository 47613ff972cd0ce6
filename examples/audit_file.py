"""Audit a skeleton file from Python: how well the best attacker reads identity (or gender).

  python examples/audit_file.py [--data=FILE.npz] [--privacy_target=subject|gender]

Without --data it audits a small synthetic dataset. The same suite as `python -m
skeleton_anon.audit`, called on arrays; only the public API is used (docs/api.md).
"""

import argparse

import skeleton_anon as sa


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data', help='a generic .npz (default: synthetic recordings)')
  parser.add_argument('--privacy_target', default='subject', choices=('subject', 'gender'))
  parser.add_argument('--attackers', default='fast', help="'fast', 'all' or NAME,NAME")
  args = parser.parse_args(argv)

  ds = (sa.load_npz(args.data) if args.data else
        sa.make_synthetic(num_subjects=8, num_actions=3, repetitions=2, num_views=2,
                          num_frames=16))
  # Re-identification is closed-set: the same people on both sides, different sequences.
  train, test, split = sa.attack_split(ds, args.privacy_target)
  result = sa.run_suite(train, test, privacy_target=args.privacy_target,
                        layout=ds.get_layout(), attackers=args.attackers, log=lambda line: None)
  print(f"{split['num_train']} training / {split['num_test']} test sequences ({split['rule']})")
  for task, best in result['strongest'].items():
    if best is not None:
      print(f"{task}: {best['attacker']} reaches {best['metric']} {best['value']:.3f} "
            f"(chance {best['chance']:.3f}, 95% interval by people "
            f"{best['ci'][0]:.3f}-{best['ci'][1]:.3f})")
  return result


if __name__ == '__main__':
  main()
