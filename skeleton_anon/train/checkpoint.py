"""Orbax checkpoints of a training stage: one item per network, the iterator state, PRNG key data.

Each stage (a pretraining bank, the anonymizer) has its own directory under workdir/checkpoints.
Restored arrays are replicated on the *current* mesh, so a run saved on eight devices resumes on
one (or on a pod). Saves are synchronous: when `save` returns the step is on disk, which is what
lets a NaN stop leave the last good checkpoint intact.

The directory may be a URL (gs://BUCKET/run/checkpoints/NAME): it goes to Orbax as an epath.Path
(skeleton_anon.pathio), never through os.path.abspath. With several processes only process 0
touches it (skeleton_anon.multihost): the training state is replicated, so process 0 writes its
own full copy as host arrays (Orbax with active_processes={0}), and on restore it reads the
checkpoint and broadcasts it. The hosts therefore need no shared storage, and a host whose disk
holds other checkpoints, or none, resumes from process 0's.
"""

from __future__ import annotations

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from skeleton_anon import multihost, pathio
from skeleton_anon.train import parallel

_META = 'meta'
_RNG = 'rng'


def _host_tree(tree):
  """numpy copies of a pytree of replicated arrays (what process 0 writes)."""
  return jax.tree.map(multihost.host_value, tree)


def _numpy_like(tree):
  """Empty numpy arrays shaped like `tree`: restored as host arrays, not onto a mesh."""
  return jax.tree.map(lambda a: np.empty(a.shape, a.dtype), tree)


def _has_local_checkpoint(directory) -> bool:
  path = pathio.as_path(directory)
  if not path.is_dir():
    return False
  return any(child.name.isdigit() for child in path.iterdir())


def has_checkpoint(directory: str) -> bool:
  """Whether `directory` holds at least one finished step (cheap: no manager is opened).

  Process 0's answer on every process (a collective with several processes).
  """
  return multihost.from_process_0(lambda: _has_local_checkpoint(directory))


def _options() -> ocp.options.MultiprocessingOptions:
  """Orbax's processes: all of one, or process 0 alone of several."""
  single = jax.process_count() == 1
  return ocp.options.MultiprocessingOptions(primary_host=0,
                                            active_processes=None if single else {0})


def save_tree(directory, tree) -> None:
  """Writes one pytree of replicated arrays to `directory` (Orbax), from process 0 alone."""
  if not multihost.is_primary():   # its copy is process 0's: replicated state, no collective
    return
  host = _host_tree(tree)
  path = pathio.as_path(directory)
  path.parent.mkdir(parents=True, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer(multiprocessing_options=_options())
  checkpointer.save(path, host, force=True)
  checkpointer.wait_until_finished()


def restore_tree(directory, like, mesh: Mesh):
  """The pytree save_tree wrote, read by process 0 and replicated on `mesh` on every process."""
  def read():
    checkpointer = ocp.StandardCheckpointer(multiprocessing_options=_options())
    return checkpointer.restore(pathio.as_path(directory), _numpy_like(like))
  return parallel.replicate(multihost.arrays_from_process_0(read, like), mesh)


def _manager(directory, max_to_keep: int) -> ocp.CheckpointManager:
  """Process 0's manager; with several processes it is the only active one."""
  single = jax.process_count() == 1
  if not single:
    directory.mkdir(parents=True, exist_ok=True)   # Orbax's create=True needs every process
  return ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=single, enable_async_checkpointing=False,
          multiprocessing_options=_options()))


class StageCheckpointer:
  """Save and restore {network name -> pytree} plus JSON metadata and a PRNG key.

  Every method is called on every process; with several, the work happens on process 0.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self.directory = pathio.as_path(directory)
    self._manager = (_manager(self.directory, max_to_keep) if multihost.is_primary()
                     else None)

  def latest_step(self) -> int | None:
    return multihost.from_process_0(lambda: self._manager.latest_step())

  def save(self, step: int, networks: dict, meta: dict, rng: jax.Array) -> None:
    """Writes `networks` (pytrees of arrays), `meta` (JSON: iterator state, history...), `rng`."""
    if self._manager is None:     # not process 0: the state is replicated, process 0 writes it
      return
    items = {name: ocp.args.StandardSave(_host_tree(tree)) for name, tree in networks.items()}
    items[_META] = ocp.args.JsonSave(meta)
    items[_RNG] = ocp.args.StandardSave({'key_data': np.asarray(jax.random.key_data(rng))})
    self._manager.save(int(step), args=ocp.args.Composite(**items), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like: dict, mesh: Mesh) -> tuple[dict, dict, jax.Array]:
    """(networks, meta, rng) at `step`; `like` gives each network's tree structure, shapes, dtypes."""
    small = {}     # process 0's metadata and key data, sent after the arrays

    def read():
      items = {name: ocp.args.StandardRestore(_numpy_like(tree)) for name, tree in like.items()}
      items[_META] = ocp.args.JsonRestore()
      items[_RNG] = ocp.args.StandardRestore()
      restored = self._manager.restore(int(step), args=ocp.args.Composite(**items))
      key = np.asarray(restored[_RNG]['key_data'])
      small.update(meta=dict(restored[_META]), key=key.tolist(), dtype=str(key.dtype))
      return {name: restored[name] for name in like}

    arrays = multihost.arrays_from_process_0(read, like)
    small = multihost.from_process_0(lambda: small)
    networks = {name: parallel.replicate(arrays[name], mesh) for name in like}
    # Through host memory: an uncommitted key can join computations on any mesh.
    rng = jax.random.wrap_key_data(np.asarray(small['key'], small['dtype']))
    return networks, small['meta'], rng

  def close(self) -> None:
    if self._manager is not None:
      self._manager.close()
