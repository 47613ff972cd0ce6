"""The four stages of a run. Each takes the pipeline's `Run` and records its finish in a marker."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from skeleton_anon.data.layouts import get_layout
from skeleton_anon.evaluate import baselines
from skeleton_anon.models import build_anonymizer
from skeleton_anon.train import anonymization, parallel
from skeleton_anon.train.loop import StopRequested
from skeleton_anon.train.pretrain import Bank
from skeleton_anon.train.workdir import StageMarkers

ANONYMIZER_DIR = 'anonymizer'


def raise_if_stopped(result, name: str) -> None:
  if not result.finished:
    raise StopRequested(f'{name}: stopped after the requested debug.stop_after_steps steps, '
                        'checkpoint saved; rerun the same command to resume')


def bank_specs(config) -> list[tuple[str, str, str, str, tuple[int, ...]]]:
  """(name, task, role, arch, seeds) of every bank the pretrain stage provides."""
  specs = []
  for task in ('action', 'privacy'):
    arch = config.classifiers[task].arch
    specs.append((task, task, 'trained_against', arch, tuple(config.classifiers[task].seeds)))
    holdout_seeds = tuple(config.evaluate.holdout_seeds[task])
    if holdout_seeds:
      specs.append((f'{task}_holdout_seed', task, 'holdout_seed', arch, holdout_seeds))
    for other in config.evaluate.holdout_archs[task]:
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
  return Bank(arch=arch, task=task, role=role, model=bank.model,
              variables=jax.tree.map(lambda a: a[part], bank.variables), seeds=tuple(seeds),
              num_classes=bank.num_classes, history=bank.history)


def pretrain_stage(run) -> None:
  """Trains (or reloads) every classifier bank of `bank_specs` on the original training data.

  Members are independent (each has its own init seed, dropout keys and BatchNorm statistics), so
  training a holdout seed inside the same vmapped call as the trained-against seeds changes
  nothing about it except cost; the anonymizer only ever sees the trained-against slice.
  """
  for group, task, arch, specs in training_groups(bank_specs(run.config)):
    marker = f'bank_{group}'
    if run.markers.done(marker):
      logging.info('pretrain %s: finished earlier, skipped (reloading its checkpoint)', group)
    labels = run.train.action if task == 'action' else run.privacy_train
    num_classes = run.num_actions if task == 'action' else run.num_privacy
    seeds = [s for spec in specs for s in spec[4]]
    if len(set(seeds)) != len(seeds):
      from skeleton_anon.errors import ConfigError
      raise ConfigError(f'{task} classifiers of {arch}: seeds {seeds} repeat; a holdout seed '
                        'must differ from the trained-against seeds')
    bank = run.train_bank(arch, labels, num_classes, seeds, run.train.x, run.train.lengths,
                          task=task, role=specs[0][2], name=group)
    offset = 0
    for spec in specs:
      run.banks[spec[0]] = _split_bank(bank, spec, offset)
      offset += len(spec[4])
    run.markers.mark(marker, {'arch': arch, 'seeds': seeds, 'task': task,
                              'banks': [spec[0] for spec in specs]})
  run.markers.mark('pretrain')


def _anonymizer_model(run):
  cfg = run.config.anonymizer
  return build_anonymizer(cfg.arch, num_persons=run.train.num_persons,
                          num_joints=run.train.num_joints, **cfg.knobs.to_dict())


def anonymize_stage(run) -> None:
  """Auto-encoder pretraining when configured, then ensemble or adversarial anonymization."""
  cfg = run.config
  if run.markers.done('anonymize'):
    logging.info('anonymize: finished earlier, skipped (reloading the trained anonymizer)')
  model = _anonymizer_model(run)
  x, lengths = run.train.x, run.train.lengths
  retarget_lengths = None
  if cfg.anonymizer.retarget_first:
    # The network learns on retargeted skeletons (body proportions already gone), so its L2 term
    # keeps f(R(x)) near R(x) and its capacity goes to what retargeting leaves: motion style.
    retarget_lengths = baselines.median_bone_lengths(x, lengths, run.layout)
    x = baselines.retarget(x, lengths, run.layout, retarget_lengths)
    logging.info('anonymize: bones retargeted to the training medians before the anonymizer')
  key = jax.random.key(int(cfg.anonymizer.seed))
  variables = jax.jit(model.init)(key, x[:2], lengths[:2])
  stop_after = int(cfg.debug.stop_after_steps)
  if cfg.anonymizer.pretrain.epochs > 0:
    result = anonymization.pretrain_reconstruction(
        model, variables, {'x': x, 'lengths': lengths}, cfg.anonymizer.pretrain, mesh=run.mesh,
        checkpoint_dir=run.checkpoint_dir('anonymizer_pretrain'),
        seed=run.stage_seed('anonymizer_pretrain'), name='anonymizer_pretrain',
        writer=run.writer, stop_after_steps=stop_after)
    raise_if_stopped(result, 'anonymizer_pretrain')
    run.history['anonymizer_pretrain'] = result.history
    variables = result.states['anonymizer'].variables
    run.markers.mark('anonymizer_pretrain')
  arrays = {'x': x, 'lengths': lengths, 'action': run.train.action,
            'privacy': run.privacy_train}
  frozen = tuple(f for f in cfg.anonymizer.frozen if f)
  result = anonymization.train_anonymizer(
      model, variables, run.banks['action'], run.banks['privacy'], arrays, cfg.anonymize,
      mesh=run.mesh, checkpoint_dir=run.checkpoint_dir('anonymize'),
      seed=run.stage_seed('anonymize'), frozen=frozen, writer=run.writer,
      stop_after_steps=stop_after,
      bank_form=run.bank_form(run.banks['action'].variables, run.banks['privacy'].variables))
  raise_if_stopped(result, 'anonymize')
  run.history['anonymize'] = result.history
  anon_state = result.states['anonymizer']
  from skeleton_anon.train.pipeline import Anonymizer
  run.anonymizer = Anonymizer(cfg.anonymizer.arch, model, anon_state.variables,
                              int(np.asarray(anon_state.step)), retarget_lengths=retarget_lengths,
                              layout=run.layout)
  if 'adversary' in result.states:
    base = run.banks['privacy']
    run.banks['adversary'] = Bank(arch=base.arch, task='privacy', role='trained_against',
                                  model=base.model, variables=result.states['adversary'].variables,
                                  seeds=base.seeds, num_classes=base.num_classes)
  if not run.markers.done('anonymize'):
    save_anonymizer(run)
  run.markers.mark('anonymize', {'step': run.anonymizer.step})


def save_anonymizer(run) -> None:
  """workdir/anonymizer/: the final variables (Orbax) and anonymizer.json to rebuild the model."""
  directory = os.path.join(os.path.abspath(run.workdir), ANONYMIZER_DIR)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, 'variables'), run.anonymizer.variables, force=True)
  checkpointer.wait_until_finished()
  info = {'arch': run.anonymizer.arch, 'knobs': run.config.anonymizer.knobs.to_dict(),
          'num_persons': run.train.num_persons, 'num_joints': run.train.num_joints,
          'num_frames': run.train.num_frames, 'layout': run.train.layout,
          'step': run.anonymizer.step,
          'edges': run.layout.edges.tolist() if run.layout.name == 'custom' else None,
          'retarget_lengths': (None if run.anonymizer.retarget_lengths is None
                               else np.asarray(run.anonymizer.retarget_lengths).tolist())}
  if jax.process_index() == 0:
    with open(os.path.join(directory, 'anonymizer.json'), 'w') as f:
      json.dump(info, f, indent=2)


def load_anonymizer(workdir: str, mesh=None):
  """(Anonymizer, info) of a workdir whose anonymize stage finished.

  info holds arch, knobs, num_persons, num_joints, num_frames, layout, edges (custom layouts),
  retarget_lengths (None unless anonymizer.retarget_first) and step; the variables are
  replicated on `mesh` (default: all devices). Raises ConfigError when there is none.
  """
  from skeleton_anon.errors import ConfigError
  from skeleton_anon.train.pipeline import Anonymizer
  directory = os.path.join(os.path.abspath(workdir), ANONYMIZER_DIR)
  info_path = os.path.join(directory, 'anonymizer.json')
  if not os.path.exists(info_path) or not StageMarkers(workdir).done('anonymize'):
    raise ConfigError(f'{workdir}: no trained anonymizer (run the pipeline\'s anonymize stage '
                      'first)')
  with open(info_path) as f:
    info = json.load(f)
  model = build_anonymizer(info['arch'], num_persons=info['num_persons'],
                           num_joints=info['num_joints'], **info['knobs'])
  x = np.zeros((1, info['num_persons'], info['num_frames'], info['num_joints'], 3), np.float32)
  like = jax.eval_shape(model.init, jax.random.key(0), x, np.ones(1, np.int32))
  mesh = mesh or parallel.make_mesh()
  sharding = parallel.replicated(mesh)
  like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), like)
  variables = ocp.StandardCheckpointer().restore(os.path.join(directory, 'variables'), like)
  layout = get_layout(info['layout'], edges=info.get('edges'), num_joints=info['num_joints'])
  retarget_lengths = info.get('retarget_lengths')
  if retarget_lengths is not None:
    retarget_lengths = np.asarray(retarget_lengths, np.float32)
  anonymizer = Anonymizer(info['arch'], model, variables, int(info['step']),
                          retarget_lengths=retarget_lengths, layout=layout)
  return anonymizer, info


def _optional_stage(module_function: str):
  """skeleton_anon.evaluate.stage.<function>, or None while that module does not exist yet."""
  try:
    from skeleton_anon.evaluate import stage as eval_stage
  except ModuleNotFoundError as e:
    if e.name == 'skeleton_anon.evaluate.stage':
      return None
    raise
  return getattr(eval_stage, module_function)


def evaluate_stage(run) -> None:
  """skeleton_anon.evaluate.stage.run_evaluate(run): report.json, report.md, plots."""
  if run.markers.done('evaluate'):
    logging.info('evaluate: finished earlier, skipped (see %s/report.json)', run.workdir)
    return
  evaluate = _optional_stage('run_evaluate')
  if evaluate is None:
    logging.warning('evaluate: skeleton_anon.evaluate.stage is not available; no report written')
    return
  evaluate(run)
  run.markers.mark('evaluate')


def export_stage(run) -> None:
  """skeleton_anon.evaluate.stage.run_export(run): the anonymized dataset under export/."""
  if not run.config.export.enabled:
    logging.info('export: disabled by config.export.enabled')
    return
  if run.markers.done('export'):
    logging.info('export: finished earlier, skipped (see %s/export)', run.workdir)
    return
  export = _optional_stage('run_export')
  if export is None:
    logging.warning('export: skeleton_anon.evaluate.stage is not available; nothing exported')
    return
  export(run)
  run.markers.mark('export')
