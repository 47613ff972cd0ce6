"""Name -> builder registries for classifiers and anonymizers."""

from __future__ import annotations

from typing import Callable

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


def build_classifier(name: str, *, num_classes: int, layout, num_persons: int, **knobs):
  _ensure_loaded()
  if name not in CLASSIFIERS:
    raise ConfigError(f'unknown classifier {name!r}; known: {sorted(CLASSIFIERS)}')
  return CLASSIFIERS[name](num_classes=num_classes, layout=layout, num_persons=num_persons,
                           **knobs)


def build_anonymizer(name: str, *, num_persons: int, num_joints: int, **knobs):
  _ensure_loaded()
  if name not in ANONYMIZERS:
    raise ConfigError(f'unknown anonymizer {name!r}; known: {sorted(ANONYMIZERS)}')
  return ANONYMIZERS[name](num_persons=num_persons, num_joints=num_joints, **knobs)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
