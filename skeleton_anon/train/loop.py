"""The one training loop every stage uses: resume, step, check, log, checkpoint.

A stage supplies its states (a dict name -> pytree), an iterator and a `step_fn`; the loop restores
the latest checkpoint if one exists, runs the remaining steps with a progress bar, writes per-epoch
means to the history and TensorBoard, checkpoints at epoch ends (and every `checkpoint_every` steps),
and stops on a non-finite metric before it is ever saved.

Keeping an accelerator fed: the batches are gathered and put on the devices by a background
thread (`data_iter.Prefetcher`, `prefetch` batches ahead) from the stage's `prepare`, and the
step's metrics stay on the devices: they are fetched together every `log_every` steps, at every
epoch end and before every checkpoint, so the host never waits for a step it does not need. The
non-finite check runs on those fetched values, in step order; because a fetch comes before every
save, a diverged step is still never checkpointed and the last good checkpoint stays the latest.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import numpy as np
import tqdm
from absl import logging
from jax.sharding import Mesh

from skeleton_anon.errors import SkeletonAnonError
from skeleton_anon.train.checkpoint import StageCheckpointer
from skeleton_anon.train.data_iter import EpochIterator, Prefetcher

# Metrics are fetched from the devices every this many steps by default (and at epoch ends and
# checkpoints); 1 fetches every step, as before issue 13.
DEFAULT_LOG_EVERY = 50


class TrainingDiverged(SkeletonAnonError):
  """A loss or metric became NaN or infinite; the last good checkpoint is kept."""


class StopRequested(SkeletonAnonError):
  """The run stopped after the requested number of steps (config.debug.stop_after_steps)."""


@dataclasses.dataclass
class LoopResult:
  states: dict
  history: list[dict]
  finished: bool
  resumed_from: int | None


def _host_means(metrics) -> dict[str, float]:
  """Fetched metrics {name: array} -> {name: float}, averaging bank members (leading seed axis)."""
  return {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()}


def _record_epoch_metrics(history: list[dict], metrics: dict, *, name: str, writer) -> None:
  """Adds epoch-end metrics (validation) to the epoch's history entry and TensorBoard."""
  if not metrics or not history:
    return
  entry = history[-1]
  entry.update({k: float(v) for k, v in metrics.items()})
  if writer is not None:
    for k, v in metrics.items():
      writer.add_scalar(f'{name}/{k}', float(v), entry['step'])
    writer.flush()
  logging.info('%s epoch %d: %s', name, entry['epoch'],
               ', '.join(f'{k}={float(v):.4g}' for k, v in metrics.items()))


def train_loop(*, name: str, states: dict, step_fn: Callable, iterator: EpochIterator,
               num_epochs: int, mesh: Mesh, checkpoint_dir: str, rng: jax.Array,
               checkpoint_every: int = 0, stop_after_steps: int = 0, writer=None,
               max_to_keep: int = 2, prepare: Callable[[int, np.ndarray], Any] | None = None,
               prefetch: int = 2, log_every: int = DEFAULT_LOG_EVERY,
               epoch_end: Callable[[dict, int], tuple[dict, dict]] | None = None) -> LoopResult:
  """Runs `step_fn(states, batch, rng, step) -> (states, metrics)` for num_epochs epochs.

  `batch` is `prepare(step, indices)` for the step's sample indices, computed `prefetch` steps
  ahead in a background thread (data_iter.Prefetcher); without `prepare` it is the indices
  themselves. Metrics stay on the devices and are fetched every `log_every` steps (0: only at
  epoch ends and checkpoints), at epoch ends and before every checkpoint.

  Resumes from the latest checkpoint in `checkpoint_dir`. The step's key is fold_in(rng, step), so
  an interrupted and resumed run draws the same keys as an uninterrupted one. `stop_after_steps` > 0
  saves and stops once that many global steps are done (used to test kill-and-resume).

  `epoch_end(states, epoch) -> (states, metrics)` runs after every epoch, before its checkpoint
  (validation and best-epoch selection: pretrain.train_bank_variables); its metrics join the
  epoch's history entry and TensorBoard, and the states it returns are the ones saved.
  """
  ckpt = StageCheckpointer(checkpoint_dir, max_to_keep=max_to_keep)
  history: list[dict] = []
  step = 0
  sums: dict[str, float] = {}
  counts: dict[str, int] = {}
  resumed_from = ckpt.latest_step()
  if resumed_from is not None:
    states, meta, rng = ckpt.restore(resumed_from, states, mesh)
    iterator.set_state(meta['iterator'])
    history, step = list(meta['history']), int(meta['step'])
    sums, counts = dict(meta.get('epoch_sums', {})), dict(meta.get('epoch_counts', {}))
    logging.info('%s: resumed from checkpoint step %d', name, step)

  total = num_epochs * iterator.steps_per_epoch
  log_every = max(0, int(log_every))
  # (step, epoch, position, metrics on the device) of the steps whose metrics are not fetched yet.
  pending: list[tuple[int, int, int, Any]] = []
  batches = Prefetcher(iterator, max(0, total - step), first_step=step, prepare=prepare,
                       depth=prefetch)

  def save():
    # The running epoch sums make a resumed epoch's mean equal the uninterrupted one. The
    # prefetcher's state is the one after the last batch trained on: the next batch to train.
    meta = {'iterator': batches.state, 'history': history, 'step': step,
            'epoch_sums': sums, 'epoch_counts': counts}
    ckpt.save(step, states, meta, rng)

  def fetch():
    """Brings the pending metrics to the host (one transfer), checks them, sums epochs."""
    nonlocal sums, counts
    if not pending:
      return
    fetched = jax.device_get([m for *_, m in pending])
    postfix = None
    for (at, epoch, position, _), metrics in zip(pending, fetched):
      values = _host_means(metrics)
      bad = [k for k, v in values.items() if not math.isfinite(v)]
      if bad:
        pending.clear()
        raise TrainingDiverged(
            f'{name}: {bad[0]} is {values[bad[0]]} at step {at} (epoch {epoch}); stopped, '
            f'the last good checkpoint in {checkpoint_dir} is kept; lower the learning rate')
      if position == 0:
        sums, counts = {}, {}
      # Per-metric counts: some metrics (the adversary's) exist only on some steps.
      for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v
        counts[k] = counts.get(k, 0) + 1
      if position == iterator.steps_per_epoch - 1:
        entry = {'epoch': epoch + 1, 'step': at + 1,
                 **{k: v / counts[k] for k, v in sums.items()}}
        history.append(entry)
        postfix = {k: f'{v:.3g}' for k, v in entry.items() if k not in ('epoch', 'step')}
        if writer is not None:
          for k, v in entry.items():
            if k not in ('epoch', 'step'):
              writer.add_scalar(f'{name}/{k}', v, at + 1)
          writer.flush()
        logging.info('%s epoch %d: %s', name, epoch + 1,
                     ', '.join(f'{k}={v:.4g}' for k, v in entry.items() if k != 'epoch'))
      else:   # the running means of the epoch so far
        postfix = {k: f'{v / counts[k]:.3g}' for k, v in sums.items()}
    pending.clear()
    if postfix:
      bar.set_postfix(postfix)

  bar = tqdm.tqdm(total=total, initial=step, desc=name, unit='step', mininterval=1.0,
                  disable=jax.process_index() != 0, leave=False)
  try:
    while step < total:
      item = batches.next()
      states, metrics = step_fn(states, item.batch, jax.random.fold_in(rng, step), step)
      pending.append((step, item.epoch, item.position, metrics))
      step += 1
      bar.update(1)
      epoch_done = item.position == iterator.steps_per_epoch - 1
      stopping = bool(stop_after_steps) and stop_after_steps <= step < total
      saving = (epoch_done or stopping or step == total
                or (checkpoint_every and step % checkpoint_every == 0))
      if saving or (log_every and len(pending) >= log_every):
        fetch()
      if epoch_done and epoch_end is not None:
        states, extra = epoch_end(states, item.epoch)
        _record_epoch_metrics(history, extra, name=name, writer=writer)
      if saving:
        save()
      if stopping:
        return LoopResult(states, history, False, resumed_from)
  finally:
    batches.close()
    bar.close()
    ckpt.close()
  return LoopResult(states, history, True, resumed_from)
