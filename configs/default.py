"""Default configuration: every key the pipeline reads, with the paper's ETRI ensemble settings.

The anonymization loss is the reference code's form (`loss_form='recon_first'`), the one the
paper's Table 4 weights (alpha 0.0333, beta 0.0067) were tuned under.

Other configs import this module and change what differs. Override any key on the command line:
  python -m skeleton_anon.main --config=configs/default.py --workdir=DIR --config.anonymize.alpha=0.2
A key that does not exist, or a value of the wrong type, is refused with the key's name.
"""

import ml_collections


# Every training section (pretrain.action, pretrain.privacy, anonymizer.pretrain, anonymize) has:
#   precision  'float32', or 'bfloat16': bfloat16 compute (matmuls, convolutions) with float32
#              parameters, optimizer state, BatchNorm statistics and losses (train/steps.py).
#   log_every  metrics stay on the device and are fetched (and checked for NaN) every this many
#              steps, at epoch ends and before checkpoints; 1 = every step, 0 = epoch ends only.
PRECISION, LOG_EVERY = 'float32', 50


def classifier_training(*, epochs, batch_size, lr, weight_decay, milestones, gamma=0.1,
                        min_steps=0, val_fraction=0.0, val_by='auto'):
  """One classifier-pretraining section: SGD, momentum 0.9, nesterov, step schedule by epoch.

  min_steps   > 0: at least this many optimizer steps, whatever the file's size: the epochs grow
              to fit and the milestones move with them (train/state.stretched). 8 epochs are
              hundreds of steps on a large file and a few dozen on a 10-person one.
  val_fraction  > 0: this share of the training samples is held out, scored after every epoch,
              and each classifier keeps its best epoch (TensorBoard and plots/ show the curve).
  val_by      'sequence' (other sequences of the same people), 'people' (other people), or
              'auto': 'people' for a gender target, else 'sequence' (closed-set re-id).
  Both off (0) reproduce the paper's settings.
  """
  return ml_collections.ConfigDict(dict(
      optimizer='sgd', epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
      milestones=list(milestones), gamma=gamma, momentum=0.9, nesterov=True,
      checkpoint_every=0, precision=PRECISION, log_every=LOG_EVERY, min_steps=min_steps,
      val_fraction=val_fraction, val_by=val_by))


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  # A workdir remembers its config; rerunning it with another config is refused unless this is set.
  c.allow_config_change = False

  # ---- data: a generic npz (DESIGN section 1), an MS-G3D (N, 3, T, V, M) .npy with its
  # (names, labels) pickle, a pyskl annotation .pkl, or, when path is empty, the synthetic
  # generator.
  c.data = ml_collections.ConfigDict()
  c.data.path = ''
  c.data.label_path = ''                # .npy input only; '' = MS-G3D's <part>_label.pkl beside it
  # .pkl (pyskl) input only: the pickle's split lists to use ('xsub' reads xsub_train/xsub_val;
  # '' = none, split_rule applies) and the normalisation ('auto': agcn for 3D; image for 2D with
  # img_shape, else skeleton). Export then also writes a pyskl pickle.
  c.data.pyskl_split = ''
  c.data.pyskl_normalize = 'auto'
  c.data.privacy_target = 'gender'      # 'subject' (re-identification) or 'gender'
  c.data.split_rule = 'auto'            # used when the file has no split array
  c.data.test_fraction = 0.2            # by_subject / random: share of subjects / samples tested
  c.data.split_seed = 0                 # by_subject / random
  c.data.max_frames = 0                 # >0 crops longer sequences (0 keeps the file's T)
  # How to make the file when it is missing (shown in the error message).
  c.data.prepare_hint = ('python -m skeleton_anon.prepare --source=... --input=... '
                         '--output=FILE.npz')
  # keypoints: 'ntu25_3d' (a depth sensor's skeletons) or 'coco17_2d' (a 2D pose estimator's
  # pixels and scores from the same recordings; normalise them with 'image').
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_subjects=20, num_actions=6, repetitions=2, num_views=2, num_frames=48, seed=0,
      keypoints='ntu25_3d'))
  # Generated data only (files come normalised by prepare); 'auto': agcn for 3D, image for 2D.
  c.data.synthetic_normalize = 'auto'

  # ---- classifiers. Knobs per architecture apply to every bank of that architecture.
  c.classifiers = ml_collections.ConfigDict()
  c.classifiers.action = ml_collections.ConfigDict(dict(arch='msg3d', seeds=[0, 1, 2]))
  c.classifiers.privacy = ml_collections.ConfigDict(dict(arch='msg3d_nog3d',
                                                         seeds=[100, 101, 102]))
  c.model_knobs = ml_collections.ConfigDict()
  # > 0: every classifier reads every k-th frame, k = ceil(T / max_frames) (a knob
  # model_knobs.<arch>.frame_stride overrides it); 0 reads every frame.
  c.classifiers.max_frames = 0
  # How the classifiers of a bank run inside one jitted step: 'vmap' (all at once, batched),
  # 'map' (one after another, jax.lax.map: less memory; faster for full-size models on CPU, see
  # BENCHMARKS.md) or 'auto' (map on CPU for members of >= 500k parameters, else vmap).
  # Same results either way, up to float rounding.
  c.bank_form = 'auto'

  # ---- classifier pretraining (reference code's ETRI settings).
  c.pretrain = ml_collections.ConfigDict()
  c.pretrain.action = classifier_training(epochs=60, batch_size=48, lr=0.05, weight_decay=5e-4,
                                          milestones=[30, 50])
  c.pretrain.privacy = classifier_training(epochs=50, batch_size=120, lr=0.03, weight_decay=1e-3,
                                           milestones=[2, 10, 30])

  # ---- anonymizer network.
  c.anonymizer = ml_collections.ConfigDict()
  c.anonymizer.arch = 'residual_mlp'    # or 'autoencoder'
  c.anonymizer.knobs = ml_collections.ConfigDict()
  c.anonymizer.seed = 0
  # Person-level differential privacy of the fit (train/private_prior.py, style_prior only):
  # epsilon > 0 fits it with (epsilon, delta)-DP, a person as the unit (inf: the same fit with
  # no noise, for comparison); 0 is off. Recorded in anonymizer.json and report.json.
  c.anonymizer.epsilon = 0.0
  c.anonymizer.delta = 1e-5
  # Retarget every bone to the training set's median length before the anonymizer (in training,
  # evaluation, export and the anonymize command): removes body proportions outright and leaves
  # the network the rest. The retargeting baseline in report.json shows what it does alone.
  c.anonymizer.retarget_first = False
  # Parameter subtrees frozen during anonymization (['encoder'] for the auto-encoder).
  c.anonymizer.frozen = []
  # Reconstruction pretraining (epochs 0 = none; the auto-encoder configs set it).
  c.anonymizer.pretrain = ml_collections.ConfigDict(dict(
      optimizer='adam', epochs=0, batch_size=64, lr=1e-3, weight_decay=0.0, milestones=[],
      gamma=0.1, precision=PRECISION, log_every=LOG_EVERY, min_steps=0))

  # ---- anonymization (Table 4, etri-res-3a3p).
  c.anonymize = ml_collections.ConfigDict()
  c.anonymize.algorithm = 'ensemble'    # 'ensemble' (Algorithm 2) or 'adversarial' (Algorithm 1)
  # 'paper': CE - a*H + b*MSE (Eq. 2/3); 'recon_first': MSE - a*H + b*CE (the reference code).
  # alpha/beta below are Table 4's residual-ensemble weights, which were tuned under recon_first,
  # so the default form is recon_first: under 'paper' the same beta would leave the
  # reconstruction term almost nothing. A config that switches to 'paper' sets its own weights.
  c.anonymize.loss_form = 'recon_first'
  c.anonymize.alpha = 0.0333
  c.anonymize.beta = 0.0067
  c.anonymize.k = 1                     # min steps per max step (adversarial)
  c.anonymize.optimizer = 'sgd'
  c.anonymize.epochs = 50
  c.anonymize.min_steps = 0             # > 0: at least this many steps (see classifier_training)
  c.anonymize.batch_size = 12
  c.anonymize.lr = 0.0006
  c.anonymize.weight_decay = 1e-5
  c.anonymize.milestones = [10, 20]
  c.anonymize.gamma = 0.1
  c.anonymize.momentum = 0.9
  c.anonymize.nesterov = True
  c.anonymize.clip_norm = 0.0           # >0 clips the anonymizer's gradient global norm
  c.anonymize.privacy_lr = 0.003       # the adversary's max step (adversarial)
  c.anonymize.privacy_weight_decay = 1e-5
  # The adversary's own step schedule (in its own steps per epoch); the reference keeps its LR
  # constant, and so does the default.
  c.anonymize.privacy_milestones = []
  # Adversarial: which batches min and max steps see (train/anonymization.plan_step). 'paper':
  # Algorithm 1 as written, k min steps then one max step on its own minibatch; 'shared': the
  # max step reuses the k-th min step's batch (this package before issue 12); 'reference': the
  # reference code's loop, each batch used for one step or the other.
  c.anonymize.adversarial_schedule = 'paper'
  # Adversarial: 0 starts the adversary from the pretrained privacy classifiers; N > 0 trains a
  # population of N adversaries initialised from scratch instead.
  c.anonymize.num_adversaries = 0
  # Adversarial: > 0 re-initialises adversary i from scratch every that many steps (staggered
  # across the population), so the anonymizer must keep beating fresh attackers. 0 = never.
  c.anonymize.adversary_reset_every = 0
  # > 0 adds a cross-fitted ridge attacker on body/motion statistics of f(x) to the min step
  # (train/adversaries.py), the honest proxy of a retrained linear attacker; needs batches with
  # several samples per private class. 0 = off.
  c.anonymize.feature_attack_weight = 0.0
  c.anonymize.feature_attack_ridge = 0.1         # penalty / mean squared feature-vector norm
  c.anonymize.feature_attack_family = 'body+motion'   # data.features family: body|motion|both
  # 'margin': held-out score of the true label minus the mean score (0 at chance, no saturation);
  # 'entropy': minus the entropy of softmax(feature_attack_scale * scores).
  c.anonymize.feature_attack_loss = 'margin'
  c.anonymize.feature_attack_scale = 10.0
  c.anonymize.checkpoint_every = 0
  c.anonymize.precision = PRECISION     # see the note above classifier_training
  c.anonymize.log_every = LOG_EVERY

  # ---- evaluation (read by skeleton_anon.pipeline.evaluation). Every default has a holdout-arch and a
  # retrained attacker for both tasks, so no number rests on white-box classifiers alone.
  c.evaluate = ml_collections.ConfigDict()
  c.evaluate.holdout_seeds = ml_collections.ConfigDict(dict(action=[3], privacy=[103]))
  c.evaluate.holdout_archs = ml_collections.ConfigDict(dict(action=['stgcn'],
                                                            privacy=['stgcn']))
  c.evaluate.holdout_arch_seeds = [200]
  c.evaluate.retrained = ml_collections.ConfigDict(dict(action=['stgcn'], privacy=['stgcn']))
  c.evaluate.retrained_seeds = [300]
  # The attack suite (skeleton_anon.attacks, the same one `audit` runs), retrained on original,
  # anonymized and retargeted data: 'fast' (feature attackers and linkage, seconds), 'all' (adds
  # retrained networks of several families), a comma list of names, or '' to skip it.
  c.evaluate.attacks = 'fast'
  c.evaluate.noise_sigmas = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1]
  c.evaluate.batch_size = 64
  c.evaluate.render_samples = [0, 1]

  # draws = K > 1 (style and flow priors): export/anonymized_draws.npz holds K-1 further
  # independent draws of every sample (names suffixed '~draw1', ...), a larger training set.
  c.export = ml_collections.ConfigDict(dict(enabled=True, draws=1))

  # Testing aid: stop (after checkpointing) once a training loop has done this many steps.
  c.debug = ml_collections.ConfigDict(dict(stop_after_steps=0))
  return c
