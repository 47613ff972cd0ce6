"""2D keypoints with scores end to end: configs/demo_2d.py (synthetic COCO-17 pixels, normalised
by the image) through pretraining, anonymization, evaluation and export, at toy size."""

import json
import os
import sys

import numpy as np
import pytest

from skeleton_anon.data.dataset import load_npz

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _demo_2d():
  sys.path.insert(0, os.path.join(REPO, 'configs'))
  try:
    import demo_2d  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  c = demo_2d.get_config()
  c.data.synthetic.update(num_subjects=6, num_actions=2, num_views=1, num_frames=16)
  for task in ('action', 'privacy'):
    c.pretrain[task].epochs, c.pretrain[task].milestones = 2, []
  c.anonymize.epochs, c.anonymize.milestones = 2, []
  c.evaluate.holdout_archs.action, c.evaluate.holdout_archs.privacy = [], []
  c.evaluate.noise_sigmas = [0.015]
  c.evaluate.render_samples = [0]
  c.evaluate.attacks = 'body_nn'
  return c


@pytest.mark.slow
def test_demo_2d_runs_end_to_end_with_scores_passed_through(tmp_path):
  from skeleton_anon import pipeline
  workdir = str(tmp_path / 'run')
  run = pipeline.run(_demo_2d(), workdir)
  test = run.data.test
  assert test.num_channels == 2 and test.layout == 'coco17' and test.score is not None
  assert test.meta['normalize'] == 'image'
  # Image-normalised: the whole 1920x1080 frame maps onto [-1, 1].
  assert np.abs(test.x).max() <= 1.5
  report = json.load(open(os.path.join(workdir, 'report.json')))
  assert report['run']['layout'] == 'coco17'
  assert np.isfinite(report['recon_rmse']['anonymized'])
  x_anon = run.anonymize(test.x, test.lengths)
  assert x_anon.shape == test.x.shape and not np.allclose(x_anon, test.x)
  assert os.path.exists(os.path.join(workdir, 'plots', 'skeletons', 'sample_00000.png'))
  exported = load_npz(os.path.join(workdir, 'export', 'anonymized.npz'))
  assert exported.num_channels == 2 and exported.layout == 'coco17'
  # Scores describe the estimator's view of the input; they are passed through unchanged.
  order = np.argsort(test.meta['source_index'])
  rows = np.sort(test.meta['source_index'])
  np.testing.assert_array_equal(exported.score[rows], test.score[order])
  assert exported.meta['normalize'] == 'image'
  # The anonymize command on a new 2D file: same format out, scores kept; 3D input refused.
  from skeleton_anon.anonymize import anonymize_file
  from skeleton_anon.data.dataset import save_npz
  from skeleton_anon.errors import DataError
  save_npz(test, tmp_path / 'new.npz')
  assert anonymize_file(workdir, str(tmp_path / 'new.npz'), str(tmp_path / 'out.npz')) == len(
      test.x)
  out = load_npz(tmp_path / 'out.npz')
  np.testing.assert_array_equal(out.score, test.score)
  np.testing.assert_allclose(out.x, x_anon, atol=1e-5)
  three_d = test.with_x(np.concatenate([test.x, test.x[..., :1]], axis=-1))
  three_d.score, three_d.meta['normalize'] = None, None
  save_npz(three_d, tmp_path / 'three_d.npz')
  with pytest.raises(DataError, match='3D coordinates \\(anonymizer: 2D\\)'):
    anonymize_file(workdir, str(tmp_path / 'three_d.npz'), str(tmp_path / 'out3.npz'))
