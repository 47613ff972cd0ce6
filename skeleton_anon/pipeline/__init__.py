"""The staged run: pretrain -> anonymize -> evaluate -> export, each resumable.

The layer above `train/` and `evaluate/`: it owns the workdir and the order of stages and is the
only place where training and evaluation meet. `run(config, workdir)` is what
`python -m skeleton_anon.main` calls. Every stage checkpoints under workdir/checkpoints/<name> and
writes workdir/stages/<name>.json when it finishes; a rerun skips finished stages (and says so)
and resumes an unfinished one from its last checkpoint.

Modules: workdir (stored config, stage markers), anonymizer (the trained anonymizer: apply, save,
load), context (Run = data + io + banks), stages, evaluation (the evaluate and export stages).
"""

from __future__ import annotations

import time

from absl import logging
from jax.sharding import Mesh

from skeleton_anon.pipeline.context import Run, make_run
from skeleton_anon.pipeline.stages import STAGES


def run(config, workdir: str, *, mesh: Mesh | None = None) -> Run:
  """Runs (or resumes) every stage of the pipeline in `workdir`; returns the Run."""
  the_run = make_run(config, workdir, mesh)
  try:
    for name, stage in STAGES:
      start = time.time()
      logging.info('stage %s', name)
      stage(the_run)
      the_run.timing[name] = time.time() - start
  finally:
    the_run.io.close()
  return the_run
