"""The four stages of a run. Each takes the pipeline's `Run` and records its finish in a marker."""

from __future__ import annotations

import jax
import numpy as np
from absl import logging

from skeleton_anon.data import transforms
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer
from skeleton_anon.pipeline import anonymized, evaluation
from skeleton_anon.models.flow_prior import FLOW_PRIOR
from skeleton_anon.pipeline.anonymizer import (STYLE_PRIOR, Anonymizer, load_anonymizer,
                                               save_anonymizer)
from skeleton_anon.pipeline.context import raise_if_stopped
from skeleton_anon.train import anonymization, private_prior
from skeleton_anon.train.flow_prior import fit_flow_prior
from skeleton_anon.train.style_prior import KNOBS as STYLE_PRIOR_KNOBS, fit_style_prior
from skeleton_anon.train.pretrain import Bank


def bank_specs(config, tasks=('action', 'privacy')) -> list[tuple[str, str, str, str,
                                                                   tuple[int, ...]]]:
  """(name, task, role, arch, seeds) of every bank the pretrain stage provides for `tasks`.

  The style prior is fitted without any classifier, so the banks a trained anonymizer would be
  trained against are held-out judges of it (role 'holdout_seed').
  """
  specs = []
  fitted = config.anonymizer.arch in (STYLE_PRIOR, FLOW_PRIOR)
  first_role = 'holdout_seed' if fitted else 'trained_against'
  for task in tasks:
    arch = config.classifiers[task].arch
    specs.append((task, task, first_role, arch, tuple(config.classifiers[task].seeds)))
    holdout_seeds = tuple(config.evaluate.holdout_seeds[task])
    if holdout_seeds:
      specs.append((f'{task}_holdout_seed', task, 'holdout_seed', arch, holdout_seeds))
    for other in config.evaluate.holdout_archs[task]:
      if other == arch:
        raise ConfigError(f'evaluate.holdout_archs.{task} lists {other!r}, the architecture '
                          f'the {task} classifiers already use; a held-out architecture must be '
                          'another family (use evaluate.holdout_seeds for more seeds)')
      specs.append((f'{task}_holdout_arch_{other}', task, 'holdout_arch', other,
                    tuple(config.evaluate.holdout_arch_seeds)))
  return specs


def training_groups(specs):
  """Banks of one task and architecture are trained as one vmapped bank (one compile, one pass
  over the data per step); returns [(group name, task, arch, [spec, ...])]."""
  groups = {}
  for spec in specs:
    name, task, _, arch, _ = spec
    key = (task, arch)
    if key not in groups:
      groups[key] = (name, task, arch, [])
    groups[key][3].append(spec)
  return list(groups.values())


def _split_bank(bank: Bank, spec, offset: int) -> Bank:
  name, task, role, arch, seeds = spec
  part = slice(offset, offset + len(seeds))
  validation = None
  if bank.validation:
    validation = {k: (v[part] if isinstance(v, list) else v) for k, v in bank.validation.items()}
  return Bank(arch=arch, task=task, role=role, model=bank.model,
              variables=jax.tree.map(lambda a: a[part], bank.variables), seeds=tuple(seeds),
              num_classes=bank.num_classes, history=bank.history, validation=validation)


def pretrain_stage(run) -> None:
  """Trains (or reloads) every classifier bank of `bank_specs` on the original training data.

  Members are independent (each has its own init seed, dropout keys and BatchNorm statistics), so
  training a holdout seed inside the same vmapped call as the trained-against seeds changes
  nothing about it except cost; the anonymizer only ever sees the trained-against slice.
  """
  data, markers = run.data, run.io.markers
  if run.privacy_only:
    logging.info('pretrain: %s', run.privacy_only)
  for group, task, arch, specs in training_groups(bank_specs(run.config, run.tasks)):
    marker = f'bank_{group}'
    if markers.done(marker):
      logging.info('pretrain %s: finished earlier, skipped (reloading its checkpoint)', group)
    labels = data.train.action if task == 'action' else data.privacy_train
    num_classes = data.num_actions if task == 'action' else data.num_privacy
    seeds = [s for spec in specs for s in spec[4]]
    if len(set(seeds)) != len(seeds):
      raise ConfigError(f'{task} classifiers of {arch}: seeds {seeds} repeat; a holdout seed '
                        'must differ from the trained-against seeds')
    bank = run.banks.train(arch, labels, num_classes, seeds, data.train.x, data.train.lengths,
                           task=task, role=specs[0][2], name=group)
    offset = 0
    for spec in specs:
      run.banks[spec[0]] = _split_bank(bank, spec, offset)
      offset += len(spec[4])
    markers.mark(marker, {'arch': arch, 'seeds': seeds, 'task': task,
                          'banks': [spec[0] for spec in specs]})
  markers.mark('pretrain')


def _anonymizer_model(run):
  cfg = run.config.anonymizer
  return build_anonymizer(cfg.arch, num_persons=run.data.train.num_persons,
                          num_joints=run.data.train.num_joints,
                          num_channels=run.data.train.num_channels, layout=run.data.layout,
                          **cfg.knobs.to_dict())


def _save_and_mark(run) -> None:
  cfg, data = run.config, run.data
  if not run.io.markers.done('anonymize'):
    save_anonymizer(run.anonymizer, run.workdir, knobs=cfg.anonymizer.knobs.to_dict(),
                    num_persons=data.train.num_persons, num_joints=data.train.num_joints,
                    num_channels=data.train.num_channels,
                    num_frames=data.train.num_frames, layout_name=data.train.layout,
                    normalize=data.train.meta.get('normalize'))
  run.io.markers.mark('anonymize', {'step': run.anonymizer.step})


def fit_style_prior_stage(run) -> None:
  """The style-prior anonymizer (models/style_prior.py): fitted in closed form on the training
  split, no classifier involved (the pretrained banks only judge it)."""
  cfg, data = run.config, run.data
  knobs = cfg.anonymizer.knobs.to_dict()
  if float(cfg.anonymizer.get('epsilon', 0.0)) != 0.0:
    fit_private_prior_stage(run, knobs)
    return
  unknown = sorted(set(knobs) - set(STYLE_PRIOR_KNOBS))
  if unknown:
    raise ConfigError(f'anonymizer style_prior: unknown knobs {unknown}; known: '
                      f'{", ".join(STYLE_PRIOR_KNOBS)}')
  if run.io.markers.done('anonymize'):
    logging.info('anonymize: fitted earlier, refitted (closed form, deterministic)')
  # shrink < 0 (or absent): one subspace per action; in [0, 1]: a shared subspace with each
  # action's covariance shrunk that far towards the pooled one (train/style_prior.py).
  shrink = knobs.pop('shrink', -1.0)
  prior = fit_style_prior(data.train.x, data.train.lengths, data.train.action,
                          data.train.subject, data.layout, seed=int(cfg.anonymizer.seed),
                          shrink=None if shrink is None or float(shrink) < 0 else float(shrink),
                          **knobs)
  logging.info('anonymize: style prior fitted (%d actions, %d components, %d frames)',
               len(prior.actions), prior.basis.shape[-1], prior.frames)
  run.anonymizer = Anonymizer(STYLE_PRIOR, None, {}, 0, layout=data.layout, prior=prior)
  _save_and_mark(run)


def fit_private_prior_stage(run, knobs: dict) -> None:
  """The style prior fitted with person-level differential privacy (train/private_prior.py).
  A finished fit is reloaded, never refitted: its noise is secret, and a refit would spend the
  budget again."""
  cfg, data = run.config, run.data
  unknown = sorted(set(knobs) - set(private_prior.KNOBS))
  if unknown:
    raise ConfigError(f'anonymizer style_prior with epsilon: unknown knobs {unknown}; the private '
                      f'fit takes {", ".join(private_prior.KNOBS)} (configs/recommended_private.py)')
  if run.io.markers.done('anonymize'):
    logging.info('anonymize: private fit finished earlier, reloaded (not refitted)')
    run.anonymizer, _ = load_anonymizer(run.workdir, run.mesh)
    return
  prior, guarantee = private_prior.fit_private_style_prior(
      data.train.x, data.train.lengths, data.train.action, data.train.subject, data.layout,
      epsilon=float(cfg.anonymizer.epsilon), delta=float(cfg.anonymizer.delta),
      seed=int(cfg.anonymizer.seed), **{**private_prior.DEFAULT_KNOBS, **knobs})
  logging.info('anonymize: private style prior fitted, epsilon %s at delta %g (noise multiplier '
               '%.3g, a person as the unit)', guarantee['spent_epsilon'], guarantee['delta'],
               guarantee['noise_multiplier'])
  run.anonymizer = Anonymizer(STYLE_PRIOR, None, {}, 0, layout=data.layout, prior=prior,
                              guarantee=guarantee)
  _save_and_mark(run)


def fit_flow_prior_stage(run) -> None:
  """The flow prior (models/flow_prior.py): the style prior's closed-form front end and a
  flow-matching network trained on every training person at once with config.anonymize's
  optimizer, lr, batch_size, epochs and min_steps (resumable, data-parallel)."""
  cfg, data = run.config, run.data
  if run.io.markers.done('anonymize'):
    logging.info('anonymize: trained earlier (reloading its checkpoint)')
  flow, result = fit_flow_prior(
      data.train.x, data.train.lengths, data.train.action, data.train.subject, data.layout,
      cfg.anonymizer.knobs.to_dict(), cfg.anonymize, mesh=run.mesh,
      checkpoint_dir=run.io.checkpoint_dir('anonymize'), seed=int(cfg.anonymizer.seed),
      writer=run.io.writer, stop_after_steps=int(cfg.debug.stop_after_steps))
  raise_if_stopped(result, 'anonymize')
  run.history['anonymize'] = result.history
  step = int(result.history[-1]['step']) if result.history else 0
  run.anonymizer = Anonymizer(FLOW_PRIOR, None, {}, step, layout=data.layout, prior=flow.prior,
                              flow=flow)
  _save_and_mark(run)


def anonymize_stage(run) -> None:
  """Auto-encoder pretraining when configured, then ensemble or adversarial anonymization (or
  the style prior's closed-form fit, or the flow prior's)."""
  cfg, data, io = run.config, run.data, run.io
  if cfg.anonymizer.arch == STYLE_PRIOR:
    fit_style_prior_stage(run)
    return
  if cfg.anonymizer.arch == FLOW_PRIOR:
    fit_flow_prior_stage(run)
    return
  if io.markers.done('anonymize'):
    logging.info('anonymize: finished earlier, skipped (reloading the trained anonymizer)')
  model = _anonymizer_model(run)
  x, lengths = data.train.x, data.train.lengths
  retarget_lengths = None
  if cfg.anonymizer.retarget_first:
    # The network learns on retargeted skeletons (body proportions already gone), so its L2 term
    # keeps f(R(x)) near R(x) and its capacity goes to what retargeting leaves: motion style.
    retarget_lengths = transforms.median_bone_lengths(x, lengths, data.layout)
    # A split of a mapped file is retargeted a batch at a time as training reads it.
    x = anonymized.retarget_view(x, lengths, data.layout, retarget_lengths,
                                 lazy=anonymized.is_bounded(run))
    logging.info('anonymize: bones retargeted to the training medians before the anonymizer')
  # Keypoint confidences weight the reconstruction term (losses.reconstruction_mse).
  scores = {} if data.train.score is None else {'score': data.train.score}
  key = jax.random.key(int(cfg.anonymizer.seed))
  variables = jax.jit(model.init)(key, x[:2], lengths[:2])
  stop_after = int(cfg.debug.stop_after_steps)
  if cfg.anonymizer.pretrain.epochs > 0:
    result = anonymization.pretrain_reconstruction(
        model, variables, {'x': x, 'lengths': lengths, **scores}, cfg.anonymizer.pretrain,
        mesh=run.mesh,
        checkpoint_dir=io.checkpoint_dir('anonymizer_pretrain'),
        seed=run.stage_seed('anonymizer_pretrain'), name='anonymizer_pretrain',
        writer=io.writer, stop_after_steps=stop_after)
    raise_if_stopped(result, 'anonymizer_pretrain')
    run.history['anonymizer_pretrain'] = result.history
    variables = result.states['anonymizer'].variables
    io.markers.mark('anonymizer_pretrain')
  arrays = {'x': x, 'lengths': lengths, 'action': data.train.action,
            'privacy': data.privacy_train, **scores}
  frozen = tuple(f for f in cfg.anonymizer.frozen if f)
  banks = run.banks
  action_bank = banks.get('action')          # None for a privacy-only run
  result = anonymization.train_anonymizer(
      model, variables, action_bank, banks['privacy'], arrays, cfg.anonymize,
      mesh=run.mesh, checkpoint_dir=io.checkpoint_dir('anonymize'),
      seed=run.stage_seed('anonymize'), frozen=frozen, writer=io.writer,
      stop_after_steps=stop_after, layout=data.layout,
      bank_form=banks.form(*(b.variables for b in (action_bank, banks['privacy']) if b)))
  raise_if_stopped(result, 'anonymize')
  run.history['anonymize'] = result.history
  anon_state = result.states['anonymizer']
  run.anonymizer = Anonymizer(cfg.anonymizer.arch, model, anon_state.variables,
                              int(np.asarray(anon_state.step)), retarget_lengths=retarget_lengths,
                              layout=data.layout)
  if 'adversary' in result.states:
    base = banks['privacy']
    adversary = result.states['adversary'].variables
    members = int(jax.tree.leaves(adversary)[0].shape[0])
    # A population trained from scratch (anonymize.num_adversaries) has no pretrained seeds:
    # its members are numbered.
    seeds = base.seeds if members == len(base.seeds) else tuple(range(members))
    banks['adversary'] = Bank(arch=base.arch, task='privacy', role='trained_against',
                              model=base.model, variables=adversary, seeds=seeds,
                              num_classes=base.num_classes)
  _save_and_mark(run)


def evaluate_stage(run) -> None:
  """evaluation.run_evaluate(run): report.json, report.md, plots."""
  if run.io.markers.done('evaluate'):
    logging.info('evaluate: finished earlier, skipped (see %s/report.json)', run.workdir)
    return
  evaluation.run_evaluate(run)
  run.io.markers.mark('evaluate')
  if not run.config.export.enabled:
    anonymized.remove_scratch(run)


def export_stage(run) -> None:
  """evaluation.run_export(run): the anonymized dataset under export/."""
  if not run.config.export.enabled:
    logging.info('export: disabled by config.export.enabled')
    return
  if run.io.markers.done('export'):
    logging.info('export: finished earlier, skipped (see %s/export)', run.workdir)
    return
  evaluation.run_export(run)
  run.io.markers.mark('export')
  anonymized.remove_scratch(run)      # the anonymized splits are in export/ now


STAGES = (('pretrain', pretrain_stage), ('anonymize', anonymize_stage),
          ('evaluate', evaluate_stage), ('export', export_stage))
