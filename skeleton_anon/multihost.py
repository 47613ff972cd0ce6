"""Process 0 reads, every process gets the answer: the one way a multi-host run consults storage.

On a pod every host runs the same program. Stage decisions, stored configs, checkpoints and the
trained anonymizer are read by process 0 alone and handed to the others, so the hosts agree even
when their disks do not (another experiment's files on one host, nothing at all on another) and
the run needs no storage shared between hosts. Every function here is a collective: all processes
call it at the same point of the run. With one process they are plain calls.

The lowest layer of the package beside pathio: it imports nothing of skeleton_anon.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import jax
import numpy as np


def is_primary() -> bool:
  """Whether this process reads and writes the workdir (process 0)."""
  return jax.process_index() == 0


def from_process_0(read: Callable[[], Any]):
  """read()'s result (JSON data) on process 0, handed to every process.

  `read` runs on process 0 only. An error in `read` is raised on every process (the others name
  process 0's error), so no process is left waiting in a later collective.
  """
  if jax.process_count() == 1:
    return read()
  from jax.experimental import multihost_utils
  payload, error = b'', None
  if is_primary():
    try:
      payload = json.dumps({'value': read()}).encode()
    except Exception as e:  # pylint: disable=broad-except
      error = e
      payload = json.dumps({'error': f'{type(e).__name__}: {e}'}).encode()
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
  # Power-of-two buffers: few shapes, so the broadcast compiles a few times per run at most.
  buffer = np.zeros(max(1024, 1 << (size - 1).bit_length()), np.uint8)
  buffer[:len(payload)] = np.frombuffer(payload, np.uint8)
  message = json.loads(np.asarray(multihost_utils.broadcast_one_to_all(buffer))[:size]
                       .tobytes().decode())
  if 'error' in message:
    if is_primary():
      raise error
    raise RuntimeError(f'process 0 could not read the workdir: {message["error"]}')
  return message['value']


def every_process(flag: bool) -> bool:
  """Whether `flag` holds on every process: for choices each host makes from its own files (a
  scratch copy to reuse) that must still be made alike, because what follows is a collective."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils
  return bool(np.asarray(multihost_utils.process_allgather(np.int32(bool(flag)))).min())


def arrays_from_process_0(read: Callable[[], Any], like=None) -> Any:
  """A pytree of host arrays that read() returns on process 0, handed to every process.

  `like` gives the tree's structure, shapes and dtypes (anything with .shape and .dtype: arrays,
  ShapeDtypeStructs); without it read() must return a flat dict {name: array}, whose shapes
  process 0 sends first. The other processes never call `read`. Returns numpy arrays. A failing
  `read` fails every process, as in from_process_0.
  """
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, read())
  from jax.experimental import multihost_utils
  tree, error = None, None
  if is_primary():
    try:
      tree = jax.tree.map(np.asarray, read())
      if like is not None:    # the same tree type on every process, whatever the reader built
        tree = jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(tree))
    except Exception as e:  # pylint: disable=broad-except
      error = e
  # Every process learns whether process 0 failed, and the shapes when `like` is not given.
  shapes = from_process_0(lambda: _shapes_or_raise(tree, error))
  if not is_primary():
    tree = (jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), like) if like is not None else
            {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()})
  return jax.tree.map(np.asarray, multihost_utils.broadcast_one_to_all(tree))


def _shapes_or_raise(tree, error: Exception | None) -> dict | None:
  if error is not None:
    raise error
  if isinstance(tree, dict) and all(isinstance(v, np.ndarray) for v in tree.values()):
    return {name: (list(a.shape), str(a.dtype)) for name, a in tree.items()}
  return None


def host_value(array) -> np.ndarray:
  """The whole value of a replicated (or host) array as numpy, on any process.

  A replicated global array is not fully addressable on a pod, but every process holds a full
  copy in its first local shard.
  """
  if isinstance(array, jax.Array) and not array.is_fully_addressable:
    if not array.is_fully_replicated:
      raise ValueError(f'host_value: array of shape {array.shape} is sharded across processes')
    return np.asarray(array.addressable_data(0))
  return np.asarray(array)
