"""Demo: the whole pipeline on a small synthetic dataset with tiny models, in minutes on a laptop.

  python -m skeleton_anon.main --config=configs/demo.py --workdir=/tmp/demo
"""

import os
import sys

import ml_collections

# Configs are loaded by path; make their sibling default.py importable from any directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.data.privacy_target = 'gender'
  # Per-sample split stratified by subject: the test performers also appear in training, so the
  # gender a classifier reads off a body is measurable on 16 synthetic subjects. (Real-data configs
  # hold subjects out; see etri_ens.py.)
  c.data.split_rule = 'random'
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_subjects=16, num_actions=4, repetitions=2, num_views=2, num_frames=24, seed=0,
      keypoints='ntu25_3d'))

  tiny_stgcn = dict(base_channels=8, blocks_per_stage=(1, 1, 1), temporal_kernel=5, dropout=0.0)
  tiny_agcn = dict(base_channels=8, blocks_per_stage=(1, 1, 1), temporal_kernel=5)
  tiny_msg3d = dict(base_channels=8, num_gcn_scales=3, num_g3d_scales=2, windows=(3,),
                    tcn_dilations=(1, 2))
  c.model_knobs = ml_collections.ConfigDict(dict(stgcn=tiny_stgcn, agcn=tiny_agcn,
                                                 msg3d_nog3d=tiny_msg3d, msg3d=tiny_msg3d))
  c.classifiers.action = ml_collections.ConfigDict(dict(arch='stgcn', seeds=[0, 1]))
  c.classifiers.privacy = ml_collections.ConfigDict(dict(arch='stgcn', seeds=[100, 101]))
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[3], privacy=[103]))
  c.evaluate.holdout_archs = ml_collections.ConfigDict(dict(action=['agcn'],
                                                            privacy=['agcn']))
  c.evaluate.retrained = ml_collections.ConfigDict(dict(action=['stgcn'], privacy=['stgcn']))
  c.evaluate.noise_sigmas = [0.01, 0.05, 0.1]
  c.evaluate.batch_size = 64

  for task in ('action', 'privacy'):
    c.pretrain[task].epochs = 15
    c.pretrain[task].batch_size = 32
    c.pretrain[task].lr = 0.05
    c.pretrain[task].weight_decay = 5e-4
    c.pretrain[task].milestones = [12]

  c.anonymizer.knobs = ml_collections.ConfigDict(dict(num_blocks=2))
  c.anonymize.algorithm = 'ensemble'
  c.anonymize.epochs = 25
  c.anonymize.batch_size = 32
  c.anonymize.lr = 0.003
  c.anonymize.milestones = [20]
  c.anonymize.clip_norm = 1.0
  # The paper's form, CE - alpha*H + beta*MSE, with weights tuned for it on the demo data.
  c.anonymize.loss_form = 'paper'
  c.anonymize.alpha = 2.0
  c.anonymize.beta = 3.0
  return c
