"""A 2D pyskl pickle (COCO-17 pixels with scores) straight into the pipeline, and back out: the
export and the anonymize command both write a pyskl pickle in the input's pixels."""

import os
import pickle

import numpy as np
import pytest

from skeleton_anon.data import load_npz
from skeleton_anon.data.safe_pickle import safe_load
from test_eval_pipeline import _config


def _pickle(path, n_subjects=4, t=8):
  rng = np.random.default_rng(0)
  anns, names = [], []
  for p in range(1, n_subjects + 1):
    for a in range(1, 4):
      for c in range(1, 3):
        name = f'S001C{c:03d}P{p:03d}R001A{a:03d}'
        centre = rng.uniform(200, 400, size=2)
        # Each performer's own size, so there is something to re-identify.
        kp = centre + rng.normal(size=(1, t, 17, 2)) * (20 + 10 * p)
        anns.append({'frame_dir': name, 'label': a - 1, 'img_shape': (480, 640),
                     'original_shape': (480, 640), 'total_frames': t,
                     'keypoint': kp.astype(np.float16),
                     'keypoint_score': rng.uniform(0.3, 1, size=(1, t, 17)).astype(np.float16)})
        names.append(name)
  split = {'xsub_train': names[0::2], 'xsub_val': names[1::2]}
  with open(path, 'wb') as f:
    pickle.dump({'split': split, 'annotations': anns}, f)
  return anns, split


@pytest.mark.slow
def test_2d_pyskl_pickle_through_the_pipeline_and_back(tmp_path):
  from skeleton_anon import anonymize, pipeline
  pkl = tmp_path / 'mini_hrnet.pkl'
  anns, split = _pickle(pkl)
  config = _config(pkl)
  config.data.privacy_target, config.data.split_rule = 'subject', 'random'
  config.data.test_fraction = 0.5
  config.evaluate.holdout_seeds.action, config.evaluate.holdout_seeds.privacy = [], []
  config.evaluate.retrained.action, config.evaluate.retrained.privacy = [], []
  config.evaluate.noise_sigmas = [0.01]
  config.evaluate.attacks = ''
  workdir = str(tmp_path / 'run')
  run = pipeline.run(config, workdir)
  assert run.data.layout.name == 'coco17' and run.data.train.meta['normalize'] == 'image'
  assert run.data.train.score is not None

  export = os.path.join(workdir, 'export')
  assert load_npz(os.path.join(export, 'anonymized.npz')).num_samples == len(anns)
  written = safe_load(os.path.join(export, 'anonymized_pyskl.pkl'))
  assert written['split'] == split
  for a, original in zip(written['annotations'], anns):
    assert set(a) == set(original) and a['frame_dir'] == original['frame_dir']
    assert a['keypoint'].dtype == np.float32 and a['keypoint'].shape == (1, 8, 17, 2)
    assert a['keypoint_score'].shape == (1, 8, 17) and a['total_frames'] == 8
    # In pixels again, near the input (the anonymizer starts at the identity, one epoch).
    diff = np.abs(a['keypoint'] - original['keypoint'].astype(np.float32))
    assert np.median(diff) < 100
  # The command on the same pickle writes the same keypoints.
  out = tmp_path / 'anon.pkl'
  assert anonymize.anonymize_file(workdir, str(pkl), str(out)) == len(anns)
  again = safe_load(out)
  for a, b in zip(again['annotations'], written['annotations']):
    np.testing.assert_allclose(a['keypoint'], b['keypoint'], atol=1e-2)
    np.testing.assert_array_equal(a['keypoint_score'], b['keypoint_score'])
