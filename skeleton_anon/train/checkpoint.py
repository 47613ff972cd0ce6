"""Orbax checkpoints of a training stage: one item per network, the iterator state, PRNG key data.

Each stage (a pretraining bank, the anonymizer) has its own directory under workdir/checkpoints.
Arrays are restored into abstract trees that carry the *current* mesh's shardings, so a run saved on
eight devices resumes on one (or on a pod). Saves are synchronous: when `save` returns the step is on
disk, which is what lets a NaN stop leave the last good checkpoint intact.

The directory may be a URL (gs://BUCKET/run/checkpoints/NAME): it goes to Orbax as an epath.Path
(skeleton_anon.pathio), never through os.path.abspath. With several processes it must be storage
every process reads and writes (a pod's gs:// workdir): Orbax's save waits for the folders
process 0 creates.
"""

from __future__ import annotations

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from skeleton_anon import pathio
from skeleton_anon.train import parallel

_META = 'meta'
_RNG = 'rng'


def _abstract(tree, mesh: Mesh):
  """ShapeDtypeStructs of `tree`, replicated on `mesh` (all training state is replicated)."""
  sharding = parallel.replicated(mesh)
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def has_checkpoint(directory: str) -> bool:
  """Whether `directory` holds at least one finished step (cheap: no manager is opened)."""
  path = pathio.as_path(directory)
  if not path.is_dir():
    return False
  return any(child.name.isdigit() for child in path.iterdir())


class StageCheckpointer:
  """Save and restore {network name -> pytree} plus JSON metadata and a PRNG key."""

  def __init__(self, directory: str, *, max_to_keep: int = 2):
    self.directory = pathio.as_path(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, networks: dict, meta: dict, rng: jax.Array) -> None:
    """Writes `networks` (pytrees of arrays), `meta` (JSON: iterator state, history...), `rng`."""
    items = {name: ocp.args.StandardSave(tree) for name, tree in networks.items()}
    items[_META] = ocp.args.JsonSave(meta)
    # Host numpy: a single-device jax.Array cannot be written by several processes.
    items[_RNG] = ocp.args.StandardSave({'key_data': np.asarray(jax.random.key_data(rng))})
    self._manager.save(int(step), args=ocp.args.Composite(**items), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like: dict, mesh: Mesh) -> tuple[dict, dict, jax.Array]:
    """(networks, meta, rng) at `step`; `like` gives each network's tree structure, shapes, dtypes."""
    items = {name: ocp.args.StandardRestore(_abstract(tree, mesh)) for name, tree in like.items()}
    items[_META] = ocp.args.JsonRestore()
    items[_RNG] = ocp.args.StandardRestore()
    restored = self._manager.restore(int(step), args=ocp.args.Composite(**items))
    networks = {name: restored[name] for name in like}
    # Through host memory: an uncommitted key can join computations on any mesh.
    rng = jax.random.wrap_key_data(np.asarray(restored[_RNG]['key_data']))
    return networks, dict(restored[_META]), rng

  def close(self) -> None:
    self._manager.close()
