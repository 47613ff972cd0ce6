"""What to run on your own small or medium dataset on a CPU machine for the best honest privacy.

  python -m skeleton_anon.main --config=configs/recommended.py --workdir=runs/mine \
      --config.data.path=FILE.npz --config.data.privacy_target=subject|gender

Nothing else is needed: frames, persons and the skeleton graph adapt to the file, the split is the
file's own (else `by_subject` for gender, `random` within subjects for identity), and a file with
a single action runs privacy-only. What it does and why (numbers on real data in docs/privacy.md):
  - bones retargeted to the training set's median lengths first: body proportions are the
    plainest identity cue and retargeting removes them outright;
  - a temporal anonymizer (models/temporal_anonymizer.py) that sees the whole sequence and edits
    bone directions, so it can change motion style while bone lengths stay constant over time;
  - adversarial training against a population of privacy classifiers that are re-initialised and
    retrained from scratch during anonymization, plus a cross-fitted ridge attacker on body and
    motion statistics inside every step: the anonymizer has to beat fresh attackers, the honest
    proxy of someone retraining on the published data;
  - classifiers of a size that learns real data on 2 cores, and evaluation by the attack suite
    (every attacker retrained on the anonymized data) beside held-out and retrained networks.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402  pylint: disable=g-import-not-at-top


def get_config():
  c = default.get_config()
  c.data.privacy_target = 'subject'
  c.data.split_rule = 'auto'
  c.data.prepare_hint = ('python -m skeleton_anon.prepare --source=... --input=... '
                         '--output=FILE.npz')

  # Classifiers: SGN-style networks (no graph; fast on CPU) are trained against; a small ST-GCN
  # is the held-out architecture, so the anonymizer is judged by a family it never saw.
  sgn = dict(width=32, joint_layers=2, temporal_kernel=3, dropout=0.1)
  stgcn = dict(base_channels=16, blocks_per_stage=(1, 1, 1), temporal_kernel=5, dropout=0.0)
  c.model_knobs = ml_collections.ConfigDict(dict(sgn=sgn, stgcn=stgcn))
  c.classifiers.max_frames = 60          # classifiers read every k-th frame of long sequences
  c.classifiers.action = ml_collections.ConfigDict(dict(arch='sgn', seeds=[0]))
  c.classifiers.privacy = ml_collections.ConfigDict(dict(arch='sgn', seeds=[100]))
  c.pretrain.action = default.classifier_training(epochs=8, batch_size=64, lr=0.05,
                                                  weight_decay=5e-4, milestones=[6])
  c.pretrain.privacy = default.classifier_training(epochs=8, batch_size=64, lr=0.05,
                                                   weight_decay=5e-4, milestones=[6])

  # Anonymizer: temporal, bone directions edited, lengths fixed; retargeting first.
  c.anonymizer.arch = 'temporal'
  c.anonymizer.knobs = ml_collections.ConfigDict(dict(
      width=32, dilations=(1, 2, 4, 8), kernel_size=3, output='bones', noise_dim=8))
  c.anonymizer.retarget_first = True

  # Anonymization: adversarial against fresh attackers (Algorithm 1 with a re-initialised
  # population) and the cross-fitted statistics attacker.
  c.anonymize.algorithm = 'adversarial'
  c.anonymize.loss_form = 'paper'
  c.anonymize.alpha = 1.0
  c.anonymize.beta = 10.0
  c.anonymize.k = 1
  c.anonymize.optimizer = 'adam'
  c.anonymize.lr = 1e-3
  c.anonymize.weight_decay = 0.0
  c.anonymize.epochs = 3
  # Large batches: the in-step statistics attacker needs several samples of each private class.
  c.anonymize.batch_size = 128
  c.anonymize.milestones = [2]
  c.anonymize.privacy_lr = 0.05
  c.anonymize.privacy_milestones = []
  c.anonymize.num_adversaries = 2
  c.anonymize.adversary_reset_every = 60
  c.anonymize.feature_attack_weight = 1.0

  # Evaluation: a held-out seed and architecture per task, attackers retrained on anonymized
  # data (a GCN and the SGN), the fast attack suite on every version of the data.
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[3], privacy=[103]))
  # The attack suite's feature attackers are the other families; a held-out GCN on top would
  # double the run's time on 2 cores (add it with --config.evaluate.holdout_archs.action=...).
  c.evaluate.holdout_archs = ml_collections.ConfigDict(dict(action=[], privacy=[]))
  c.evaluate.retrained = ml_collections.ConfigDict(dict(action=['sgn'], privacy=['sgn']))
  c.evaluate.noise_sigmas = [0.01, 0.05]
  c.evaluate.attacks = 'fast'
  c.evaluate.batch_size = 128
  return c
