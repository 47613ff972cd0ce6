"""The trained anonymizer as one object: how it is applied, saved and loaded.

`Anonymizer.apply` is the single place where retargeting-first and the network come together (or
where the fitted style prior is applied instead of a network), so training, evaluation, export
and the `anonymize` command cannot disagree on what "anonymized" is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from skeleton_anon import multihost, pathio
from skeleton_anon.data import transforms
from skeleton_anon.data.layouts import Layout, get_layout
from skeleton_anon.errors import ConfigError
from skeleton_anon.models import build_anonymizer, flow_prior as flow_lib, style_prior
from skeleton_anon.pipeline.workdir import StageMarkers
from skeleton_anon.train import checkpoint, parallel, pretrain

ANONYMIZER_DIR = 'anonymizer'
# anonymizer.arch of the fitted (not trained) anonymizer, models/style_prior.py.
STYLE_PRIOR = 'style_prior'
STYLE_PRIOR_FILE = 'style_prior.npz'
# The flow prior (models/flow_prior.py): style_prior.npz, flow_prior.npz and the network's
# variables (Orbax, under variables/).
FLOW_PRIOR = flow_lib.FLOW_PRIOR
FLOW_PRIOR_FILE = 'flow_prior.npz'
# About this many samples are anonymized at once (Anonymizer.chunk_size): 1024 at T=300 is
# 180 MB of coordinates in and out.
CHUNK_SAMPLES = 1024


@dataclasses.dataclass
class Anonymizer:
  """The trained anonymizer: x -> f(R(x)), x's shape.

  f is `model.apply(variables, x, lengths)`. R is bone-length retargeting to `retarget_lengths`
  along `layout` when the run set anonymizer.retarget_first (the network was trained on R(x),
  so R must come first wherever it is applied), else the identity. For arch 'style_prior' the
  anonymizer is the fitted `prior` (models/style_prior.py; it retargets itself) and model and
  variables are unused; for 'flow_prior' `flow` (models/flow_prior.py) draws the performances
  and `prior` is its front end.
  """
  arch: str
  model: Any
  variables: dict
  step: int = 0
  retarget_lengths: np.ndarray | None = None
  layout: Layout | None = None
  prior: style_prior.StylePrior | None = None
  flow: flow_lib.FlowPrior | None = None
  # The private fit's record (train/private_prior.guarantee), None when not private.
  guarantee: dict | None = None

  def redrawn(self, draw: int) -> 'Anonymizer':
    """The same prior with its draws re-seeded: draw k gives every input another independent
    performance (draw 0 is this anonymizer). Only the priors draw; a network's output is fixed."""
    if self.prior is None:
      raise ConfigError(f'export.draws > 1 needs an anonymizer that draws (style_prior or '
                        f'flow_prior); {self.arch!r} gives one output per input')
    if draw == 0:
      return self
    prior = dataclasses.replace(self.prior, salt=int(self.prior.salt) + 7919 * int(draw))
    flow = None if self.flow is None else dataclasses.replace(self.flow, prior=prior)
    return dataclasses.replace(self, prior=prior, flow=flow)

  @property
  def changes_duration(self) -> bool:
    """Whether outputs play for other durations than their inputs (a prior's
    output_duration): the released lengths are then `apply_with_lengths`'s."""
    return self.prior is not None and self.prior.duration_mode != 'input'

  def apply_with_lengths(self, x, lengths, *, mesh=None, batch_size: int = 64
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(f(R(x)), the outputs' lengths [N]): `apply` and how many frames each output plays."""
    lengths = np.asarray(lengths, np.int32)
    out, played = np.empty(x.shape, np.float32), lengths.copy()
    for lo, chunk, n in self.apply_chunks(x, lengths, mesh=mesh, batch_size=batch_size,
                                          with_lengths=True):
      out[lo:lo + len(chunk)], played[lo:lo + len(chunk)] = chunk, n
    return out, played

  def apply(self, x, lengths, *, mesh=None, batch_size: int = 64, out=None) -> np.ndarray:
    """f(R(x)) for all of x, float32 [N, M, T, V, C], written into `out` (default: a new array)
    and returned; a network runs data-parallel on `mesh` (default: every local device). x may be a memory map or `data.rows.Rows`; `out` any array of x's shape, e.g.
    a disk-backed memory map: memory stays bounded by one chunk (see `apply_chunks`)."""
    lengths = np.asarray(lengths, np.int32)
    if out is None:
      out = np.empty(x.shape, np.float32)
    for lo, chunk in self.apply_chunks(x, lengths, mesh=mesh, batch_size=batch_size):
      out[lo:lo + len(chunk)] = chunk
    return out

  def chunk_size(self, batch_size: int) -> int:
    """Samples anonymized at once by `apply_chunks`: whole batches of `batch_size` (the network's
    batches are then those of one call over all of x) and whole chunks of transforms.CHUNK (the
    style prior's and retargeting's), about CHUNK_SAMPLES of them."""
    unit = int(np.lcm(max(1, int(batch_size)), transforms.CHUNK))
    return unit * max(1, CHUNK_SAMPLES // unit)

  def apply_chunks(self, x, lengths, *, mesh=None, batch_size: int = 64,
                   with_lengths: bool = False):
    """Yields (start, f(R(x[start:start + n]))) over x in order, chunk by chunk (`chunk_size`),
    with the outputs' lengths as a third item when with_lengths.

    The values are exactly those of one call over all of x: the chunks end on the batch and
    transforms.CHUNK boundaries such a call uses.
    """
    lengths = np.asarray(lengths, np.int32)
    step = self.chunk_size(batch_size)
    for lo in range(0, len(x), step):
      chunk = np.asarray(x[lo:lo + step], np.float32)
      out, played = self._apply_in_memory(chunk, lengths[lo:lo + step], mesh, batch_size)
      yield (lo, out, played) if with_lengths else (lo, out)

  def _apply_in_memory(self, x: np.ndarray, lengths: np.ndarray, mesh,
                       batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    if self.flow is not None:
      return style_prior.anonymize_with_lengths(self.flow.prior, x, lengths, self.layout,
                                                generator=self.flow.generate)
    if self.prior is not None:
      return style_prior.anonymize_with_lengths(self.prior, x, lengths, self.layout)
    if self.retarget_lengths is not None:
      x = transforms.retarget(x, lengths, self.layout, self.retarget_lengths)
    return pretrain.apply_anonymizer(self.model, self.variables, x, lengths,
                                     mesh=mesh or parallel.make_mesh(),
                                     batch_size=batch_size), lengths


def save_anonymizer(anonymizer: Anonymizer, workdir: str, *, knobs: dict, num_persons: int,
                    num_joints: int, num_frames: int, layout_name: str,
                    normalize: str | None = None, num_channels: int = 3) -> None:
  """workdir/anonymizer/: the final variables (Orbax) and anonymizer.json to rebuild the model."""
  directory = pathio.as_path(workdir) / ANONYMIZER_DIR   # a local folder or a URL
  if anonymizer.prior is not None:
    if jax.process_index() == 0:
      arrays = anonymizer.prior.to_arrays()
      pathio.atomic_write(directory / STYLE_PRIOR_FILE, lambda f: np.savez(f, **arrays),
                          binary=True)
    if anonymizer.flow is not None:
      checkpoint.save_tree(directory / 'variables', anonymizer.flow.variables)
      if jax.process_index() == 0:
        extra = anonymizer.flow.state_arrays()
        pathio.atomic_write(directory / FLOW_PRIOR_FILE, lambda f: np.savez(f, **extra),
                            binary=True)
  else:
    checkpoint.save_tree(directory / 'variables', anonymizer.variables)
  layout = anonymizer.layout
  info = {'arch': anonymizer.arch, 'knobs': knobs, 'num_persons': num_persons,
          'num_joints': num_joints, 'num_frames': num_frames, 'layout': layout_name,
          'num_channels': int(num_channels), 'step': anonymizer.step, 'normalize': normalize,
          'edges': layout.edges.tolist() if layout is not None and layout.name == 'custom'
                   else None,
          'retarget_lengths': (None if anonymizer.retarget_lengths is None
                               else np.asarray(anonymizer.retarget_lengths).tolist()),
          'differential_privacy': anonymizer.guarantee}
  if jax.process_index() == 0:
    pathio.write_json(directory / 'anonymizer.json', info, indent=2)


def _read_info(workdir, directory) -> dict | None:
  """anonymizer.json, or None when the anonymize stage has not finished (process 0's disk)."""
  info_path = directory / 'anonymizer.json'
  if not info_path.exists() or not StageMarkers(workdir).done('anonymize'):
    return None
  return pathio.read_json(info_path)


def _read_prior(directory, name: str = STYLE_PRIOR_FILE) -> dict[str, np.ndarray]:
  with (directory / name).open('rb') as f, np.load(f, allow_pickle=False) as arrays:
    return {key: arrays[key] for key in arrays.files}


def _load_flow(directory, info: dict, layout: Layout, mesh) -> Anonymizer:
  prior = style_prior.StylePrior.from_arrays(
      multihost.arrays_from_process_0(lambda: _read_prior(directory)))
  extra = multihost.arrays_from_process_0(lambda: _read_prior(directory, FLOW_PRIOR_FILE))
  knobs = {**flow_lib.DEFAULT_KNOBS, **info['knobs']}
  model = flow_lib.build_velocity_field(prior, knobs)
  like = jax.eval_shape(lambda: flow_lib.init_variables(model, 0))
  variables = jax.device_get(checkpoint.restore_tree(directory / 'variables', like,
                                                     mesh or parallel.make_mesh()))
  duration = np.asarray(extra['log_duration'], np.float64)
  flow = flow_lib.FlowPrior(prior=prior, model=model, variables=variables,
                            scale=np.asarray(extra['scale'], np.float32),
                            log_duration_mean=float(duration[0]),
                            log_duration_std=float(duration[1]),
                            sample_steps=int(knobs['sample_steps']),
                            condition_duration=bool(knobs['duration']),
                            texture=float(knobs['texture']))
  return Anonymizer(FLOW_PRIOR, None, {}, int(info['step']), layout=layout, prior=prior,
                    flow=flow)


def load_anonymizer(workdir: str, mesh=None) -> tuple[Anonymizer, dict]:
  """(Anonymizer, info) of a workdir whose anonymize stage finished.

  info holds arch, knobs, num_persons, num_joints, num_frames, layout, edges (custom layouts),
  normalize (how the training data was normalised, None when unknown), retarget_lengths (None
  unless anonymizer.retarget_first) and step; the variables are replicated on `mesh` (default:
  all devices). Raises ConfigError when there is none. With several processes, process 0 reads
  the files and hands them to the others (a collective).
  """
  directory = pathio.as_path(workdir) / ANONYMIZER_DIR
  info = multihost.from_process_0(lambda: _read_info(workdir, directory))
  if info is None:
    raise ConfigError(f'{workdir}: no trained anonymizer (run the pipeline\'s anonymize stage '
                      'first)')
  layout = get_layout(info['layout'], edges=info.get('edges'), num_joints=info['num_joints'])
  if info['arch'] == STYLE_PRIOR:
    prior = style_prior.StylePrior.from_arrays(
        multihost.arrays_from_process_0(lambda: _read_prior(directory)))
    return Anonymizer(STYLE_PRIOR, None, {}, 0, layout=layout, prior=prior,
                      guarantee=info.get('differential_privacy')), info
  if info['arch'] == FLOW_PRIOR:
    return _load_flow(directory, info, layout, mesh), info
  channels = int(info.get('num_channels', 3))  # files written before 2D support: 3D
  model = build_anonymizer(info['arch'], num_persons=info['num_persons'],
                           num_joints=info['num_joints'], num_channels=channels, layout=layout,
                           **info['knobs'])
  x = np.zeros((1, info['num_persons'], info['num_frames'], info['num_joints'], channels),
               np.float32)
  like = jax.eval_shape(model.init, jax.random.key(0), x, np.ones(1, np.int32))
  variables = checkpoint.restore_tree(directory / 'variables', like,
                                      mesh or parallel.make_mesh())
  retarget_lengths = info.get('retarget_lengths')
  if retarget_lengths is not None:
    retarget_lengths = np.asarray(retarget_lengths, np.float32)
  anonymizer = Anonymizer(info['arch'], model, variables, int(info['step']),
                          retarget_lengths=retarget_lengths, layout=layout)
  return anonymizer, info
