"""The one training loop every stage uses: resume, step, check, log, checkpoint.

A stage supplies its states (a dict name -> pytree), an iterator and a `step_fn`; the loop restores
the latest checkpoint if one exists, runs the remaining steps with a progress bar, writes per-epoch
means to the history and TensorBoard, checkpoints at epoch ends (and every `checkpoint_every` steps),
and stops on a non-finite metric before it is ever saved.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import numpy as np
import tqdm
from absl import logging
from jax.sharding import Mesh

from skeleton_anon.errors import SkeletonAnonError
from skeleton_anon.train.checkpoint import StageCheckpointer
from skeleton_anon.train.data_iter import EpochIterator


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
  """Metrics pytree -> {name: float}, averaging bank members (leading seed axis)."""
  return {k: float(np.mean(np.asarray(v))) for k, v in jax.device_get(metrics).items()}


def train_loop(*, name: str, states: dict, step_fn: Callable, iterator: EpochIterator,
               num_epochs: int, mesh: Mesh, checkpoint_dir: str, rng: jax.Array,
               checkpoint_every: int = 0, stop_after_steps: int = 0, writer=None,
               max_to_keep: int = 2) -> LoopResult:
  """Runs `step_fn(states, indices, rng, step) -> (states, metrics)` for num_epochs epochs.

  Resumes from the latest checkpoint in `checkpoint_dir`. The step's key is fold_in(rng, step), so
  an interrupted and resumed run draws the same keys as an uninterrupted one. `stop_after_steps` > 0
  saves and stops once that many global steps are done (used to test kill-and-resume).
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

  def save():
    # The running epoch sums make a resumed epoch's mean equal the uninterrupted one.
    meta = {'iterator': iterator.get_state(), 'history': history, 'step': step,
            'epoch_sums': sums, 'epoch_counts': counts}
    ckpt.save(step, states, meta, rng)

  total = num_epochs * iterator.steps_per_epoch
  bar = tqdm.tqdm(total=total, initial=step, desc=name, unit='step', mininterval=1.0,
                  disable=jax.process_index() != 0, leave=False)
  try:
    while step < total:
      epoch, position, indices = iterator.next()
      states, metrics = step_fn(states, indices, jax.random.fold_in(rng, step), step)
      values = _host_means(metrics)
      bad = [k for k, v in values.items() if not math.isfinite(v)]
      if bad:
        raise TrainingDiverged(
            f'{name}: {bad[0]} is {values[bad[0]]} at step {step} (epoch {epoch}); stopped, '
            f'the last good checkpoint in {checkpoint_dir} is kept; lower the learning rate')
      step += 1
      bar.update(1)
      if position == 0:
        sums, counts = {}, {}
      # Per-metric counts: some metrics (the adversary's) exist only on some steps.
      for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v
        counts[k] = counts.get(k, 0) + 1
      epoch_done = position == iterator.steps_per_epoch - 1
      if epoch_done:
        entry = {'epoch': epoch + 1, 'step': step, **{k: v / counts[k] for k, v in sums.items()}}
        history.append(entry)
        bar.set_postfix({k: f'{v:.3g}' for k, v in entry.items() if k not in ('epoch', 'step')})
        if writer is not None:
          for k, v in entry.items():
            if k not in ('epoch', 'step'):
              writer.add_scalar(f'{name}/{k}', v, step)
          writer.flush()
        logging.info('%s epoch %d: %s', name, epoch + 1,
                     ', '.join(f'{k}={v:.4g}' for k, v in entry.items() if k != 'epoch'))
      stopping = bool(stop_after_steps) and stop_after_steps <= step < total
      if (epoch_done or stopping or step == total
          or (checkpoint_every and step % checkpoint_every == 0)):
        save()
      if stopping:
        return LoopResult(states, history, False, resumed_from)
  finally:
    bar.close()
    ckpt.close()
  return LoopResult(states, history, True, resumed_from)
