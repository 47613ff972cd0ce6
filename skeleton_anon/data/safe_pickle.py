"""A restricted unpickler for label and annotation pickles from other toolkits.

`pickle.load` runs whatever callable a file names, so a downloaded label file can execute code.
The unpickler here resolves only the globals that plain data needs: the builtin containers and
numbers, and the handful of numpy functions that rebuild arrays, dtypes and scalars. Any other
global is refused before it is called, so a malicious payload never runs.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle

from skeleton_anon.errors import DataError

# (module, name) pairs a data pickle may reference. `numpy.core` is numpy 1.x's name for
# `numpy._core`; pickles written under either version are accepted.
_BUILTINS = {('builtins', n) for n in ('set', 'frozenset', 'bytearray', 'complex')}
_NUMPY = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy._core.multiarray', '_reconstruct'), ('numpy._core.multiarray', 'scalar'),
    ('numpy._core.numeric', '_frombuffer'),
}
ALLOWED_GLOBALS = frozenset(
    _BUILTINS | _NUMPY | {('collections', 'OrderedDict'), ('_codecs', 'encode')} |
    {(m.replace('numpy._core', 'numpy.core'), n) for m, n in _NUMPY})


class _RefusedGlobal(Exception):

  def __init__(self, module: str, name: str):
    super().__init__(f'{module}.{name}')
    self.module = module
    self.name = name


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only `ALLOWED_GLOBALS`; everything else raises before it can be called."""

  def find_class(self, module, name):
    if module == '__builtin__':  # protocol <= 2 pickles use Python 2's module name
      module = 'builtins'
    if (module, name) not in ALLOWED_GLOBALS:
      raise _RefusedGlobal(module, name)
    if module.startswith('numpy.core'):
      module = module.replace('numpy.core', 'numpy._core', 1)
    return getattr(importlib.import_module(module), name)


def safe_loads(data: bytes, path=None):
  """Unpickles `data` admitting only containers, str, bytes, numbers, None and numpy arrays.

  Raises:
    DataError: naming `path` and the refused global, or saying the bytes are not a pickle.
  """
  try:
    return _RestrictedUnpickler(io.BytesIO(data), encoding='latin1').load()
  except _RefusedGlobal as e:
    raise DataError(path, f'refused to unpickle {e.module}.{e.name}: a data pickle may only hold '
                    'plain containers, strings, numbers and numpy arrays (the file may try to '
                    'run code)') from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
          IndexError, KeyError, MemoryError) as e:
    raise DataError(path, f'not a readable pickle ({type(e).__name__}: {e})') from None


def safe_load(path):
  """Reads and unpickles a file with `safe_loads`; a missing file is a DataError too."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(path, 'file does not exist')
  with open(path, 'rb') as f:
    return safe_loads(f.read(), path)
