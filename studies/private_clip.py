"""How the private style prior's clip trades bias for noise (train/private_prior.py).

    python studies/private_clip.py [--data_dir=../shared/data]

For each epsilon, `frequencies` and `clip` the prior is fitted on MSRC-12's training split (3
noise draws where epsilon is finite) and its nearest-mean action classifier is scored on the
test split: the quickest read of how much of the actions survive the noise (no pipeline run).
The file is real people's recordings: read from --data_dir, never copied; absent, it says so.
"""

import argparse
import math
import os

import numpy as np

from skeleton_anon.data import transforms
from skeleton_anon.data.dataset import load_npz
from skeleton_anon.models import style_prior
from skeleton_anon.train.private_prior import fit_private_style_prior

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def action_accuracy(prior, x, lengths, action, layout) -> float:
  front = style_prior.front_end(x, lengths, layout, prior.bone_lengths, prior.reference,
                                prior.placement, prior.align)
  flat = transforms.direction_encoding(front, lengths, layout, prior.frames).reshape(len(x), -1)
  rows = style_prior.predict_action(prior, front, lengths, layout, flat)
  return float(np.mean(prior.actions[rows] == action))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--data_dir', default=os.path.join(ROOT, '..', 'shared', 'data'))
  parser.add_argument('--epsilons', default='inf,8,4')
  parser.add_argument('--frequencies', default='3,4')
  parser.add_argument('--clips', default='0.2,0.3,0.4,0.5,1.0')
  args = parser.parse_args(argv)
  path = os.path.join(args.data_dir, 'msrc12.npz')
  if not os.path.exists(path):
    print(f'{path} is absent: nothing to measure')
    return
  ds = load_npz(path)
  layout, train = ds.get_layout(), ds.split == 0
  test = ~train
  print('| epsilon | frequencies | clip | nearest-mean action top-1 (test) |\n|---|---|---|---|')
  for eps in (float(e) for e in args.epsilons.split(',')):
    for freq in (int(f) for f in args.frequencies.split(',')):
      for clip in (float(c) for c in args.clips.split(',')):
        seeds = (0,) if math.isinf(eps) else (0, 1, 2)
        scores = [action_accuracy(fit_private_style_prior(
            ds.x[train], ds.lengths[train], ds.action[train], ds.subject[train], layout,
            epsilon=eps, delta=1e-5, frequencies=freq, clip=clip, noise_seed=s)[0],
            ds.x[test], ds.lengths[test], ds.action[test], layout) for s in seeds]
        print(f'| {eps:g} | {freq} | {clip:g} | {" / ".join(f"{100 * a:.1f}" for a in scores)} |',
              flush=True)


if __name__ == '__main__':
  main()
