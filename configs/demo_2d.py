"""Demo on 2D keypoints: the demo pipeline on what a COCO-17 pose estimator (HRNet, RTMPose)
would report from the same synthetic recordings: image pixels with per-joint scores.

  python -m skeleton_anon.main --config=configs/demo_2d.py --workdir=/tmp/demo_2d

Coordinates are normalised by the image as pyskl's PreNormalize2D does ('image'); the scores
weight the reconstruction term (an unseen joint is free to move) and pass through to the export.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = demo.get_config()
  c.data.synthetic.keypoints = 'coco17_2d'
  c.data.synthetic_normalize = 'image'
  # Image-normalised coordinates span [-1, 1] over the whole frame, so a body is about 0.5 tall
  # (a Kinect skeleton in metres is about 1.7): the noise baselines scale with it.
  c.evaluate.noise_sigmas = [0.003, 0.015, 0.03]
  return c
