"""Data parallelism: a 1-D mesh over every device, batch and replicated shardings, global batches.

`jax.jit` over a Mesh with a 'data' axis is the current form of pmap's data parallelism (DESIGN
section 4): batches are split along their leading axis, parameters are replicated, and XLA inserts
the gradient all-reduce. The same code runs on one CPU, eight forced host devices, a GPU node or a
multi-host pod, where each process feeds only its own rows.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from skeleton_anon.data import rows as rows_lib

DATA_AXIS = 'data'


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A mesh with one 'data' axis over `devices` (default: every device of every process)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Split the leading (batch) axis over the 'data' axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same value on every device (parameters, optimizer state)."""
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """A copy of a pytree of host or device arrays, replicated on `mesh`.

  Always fresh buffers: the training steps donate their state, and device_put may reuse the input
  buffer as one shard of its output (even with may_alias=False), so donating that would delete the
  caller's arrays (e.g. a bank's pretrained variables). jnp.copy forces new buffers.
  """
  sharding = replicated(mesh)
  return jax.tree.map(lambda a: jnp.copy(jax.device_put(a, sharding)), tree)


def padded_batch_size(batch_size: int, mesh: Mesh) -> int:
  """The smallest multiple of the device count that holds `batch_size` samples."""
  n = mesh.devices.size
  return -(-int(batch_size) // n) * n


def pad_indices(indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Pads sample indices to `size` by repeating real ones; returns (indices, weight).

  Repeating real samples rather than zeros keeps BatchNorm batch statistics close to those of the
  real batch; their weight 0 removes them from every loss and metric.
  """
  indices = np.asarray(indices, np.int64)
  if len(indices) == 0:
    raise ValueError('cannot pad an empty batch')
  weight = np.zeros(size, np.float32)
  weight[:len(indices)] = 1.0
  reps = np.resize(indices, size)
  return reps, weight


def local_rows(global_size: int) -> slice:
  """The rows of a global batch that this process supplies (contiguous, equal per process)."""
  per_process = global_size // jax.process_count()
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def to_global(local_batch: dict, mesh: Mesh, global_size: int) -> dict:
  """Host arrays holding this process's rows -> global jax.Arrays sharded on the batch axis."""
  sharding = batch_sharding(mesh)
  def put(a):
    a = np.asarray(a)
    return jax.make_array_from_process_local_data(sharding, a, (global_size,) + a.shape[1:])
  return {k: put(v) for k, v in local_batch.items()}


def gather_batch(arrays: dict, indices: np.ndarray, batch_size: int, mesh: Mesh) -> dict:
  """Global sharded batch of `arrays[k][indices]`, padded to a device multiple with a `weight` key.

  `indices` are the global batch's sample indices (every process computes the same list); each process
  gathers only its own rows, so on a pod no process touches another's data. An array may be a
  memory map or `data.rows.Rows` (a split of a mapped file): only the batch's rows are read.
  """
  size = padded_batch_size(batch_size, mesh)
  idx, weight = pad_indices(indices, size)
  rows = local_rows(size)
  local = {k: rows_lib.take(v, idx[rows]) for k, v in arrays.items()}
  local['weight'] = weight[rows]
  return to_global(local, mesh, size)
