"""Errors a user can act on: one line that names the file, the sample and the problem."""

from __future__ import annotations


class SkeletonAnonError(Exception):
  """Base class for every error this package raises on purpose."""


class DataError(SkeletonAnonError, ValueError):
  """Bad input data. str() is one line: `<file>: sample <i> (<name>): <problem>`."""

  def __init__(self, path, problem: str, *, sample: int | None = None,
               name: str | None = None, key: str | None = None):
    self.path = str(path) if path is not None else None
    self.problem = problem
    self.sample = sample
    self.name = name
    self.key = key
    where = [self.path or '<memory>']
    if key is not None:
      where.append(f'key {key!r}')
    if sample is not None:
      where.append(f'sample {sample}' + (f' ({name})' if name else ''))
    elif name:
      where.append(name)
    super().__init__(': '.join(where) + ': ' + ' '.join(problem.split()))


class ConfigError(SkeletonAnonError, ValueError):
  """A config key that does not exist, has the wrong type, or contradicts another."""


class OutputExistsError(SkeletonAnonError, FileExistsError):
  """An output path exists and --overwrite was not given."""

  def __init__(self, path):
    super().__init__(f'{path}: output already exists; pass --overwrite to replace it')
