"""Name -> builder registries for classifiers and anonymizers."""

from __future__ import annotations

import inspect
from typing import Callable

import flax.linen as nn
import jax
import numpy as np

from skeleton_anon.errors import ConfigError

CLASSIFIERS: dict[str, Callable] = {}
ANONYMIZERS: dict[str, Callable] = {}


def register_classifier(name: str):
  def wrap(builder):
    CLASSIFIERS[name] = builder
    return builder
  return wrap


def register_anonymizer(name: str):
  def wrap(builder):
    ANONYMIZERS[name] = builder
    return builder
  return wrap


def _ensure_loaded():
  # Importing the model modules fills the registries (each module registers itself).
  from skeleton_anon.models import zoo  # noqa: F401


def _check_knobs(kind: str, name: str, builder: Callable, knobs: dict, given: set) -> None:
  """A knob the builder does not take is a one-line ConfigError naming the known ones.

  Builders that take **knobs (msg3d, the anonymizers) check their own and are left alone.
  """
  params = inspect.signature(builder).parameters
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    return
  known = sorted(set(params) - given)
  unknown = sorted(set(knobs) - set(params))
  if unknown:
    raise ConfigError(f'{kind} {name!r}: unknown knobs {unknown}; known: {known}')


def check_channels(name: str, base_channels: int, *, multiple_of: int = 1, at_least: int = 1,
                   why: str = '') -> None:
  """base_channels that a network cannot split is a one-line ConfigError at build time, not a
  shape error from inside its first forward pass."""
  base_channels = int(base_channels)
  if base_channels < max(at_least, 1) or base_channels % multiple_of:
    need = [f'>= {max(at_least, 1)}'] + ([f'a multiple of {multiple_of}'] if multiple_of > 1
                                          else [])
    raise ConfigError(f'classifier {name!r}: base_channels={base_channels} must be '
                      f'{" and ".join(need)}' + (f' ({why})' if why else ''))


class FrameStride(nn.Module):
  """`inner` on every `stride`-th frame: long sequences (KGBD's 300 frames) at a fraction of the
  cost, for classifiers whose verdict does not need every frame."""
  inner: nn.Module
  stride: int

  def __call__(self, x, train: bool = False):
    return self.inner(x[:, :, ::self.stride], train=train)


def build_classifier(name: str, *, num_classes: int, layout, num_persons: int,
                     frame_stride: int = 1, **knobs):
  """The registered classifier `name`; `frame_stride` > 1 (a knob every architecture takes)
  makes it read every frame_stride-th frame only."""
  _ensure_loaded()
  if name not in CLASSIFIERS:
    raise ConfigError(f'unknown classifier {name!r}; known: {sorted(CLASSIFIERS)}')
  _check_knobs('classifier', name, CLASSIFIERS[name], knobs,
               {'num_classes', 'layout', 'num_persons'})
  model = CLASSIFIERS[name](num_classes=num_classes, layout=layout, num_persons=num_persons,
                            **knobs)
  if int(frame_stride) < 1:
    raise ConfigError(f'classifier {name!r}: frame_stride must be >= 1, got {frame_stride}')
  return model if int(frame_stride) == 1 else FrameStride(model, int(frame_stride))


def build_anonymizer(name: str, *, num_persons: int, num_joints: int, num_channels: int = 3,
                     **knobs):
  """The anonymizer `name` for data [N, num_persons, T, num_joints, num_channels] (C=2: 2D)."""
  _ensure_loaded()
  if name not in ANONYMIZERS:
    raise ConfigError(f'unknown anonymizer {name!r}; known: {sorted(ANONYMIZERS)}')
  knobs.setdefault('num_channels', int(num_channels))
  return ANONYMIZERS[name](num_persons=num_persons, num_joints=num_joints, **knobs)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
