"""python -m skeleton_anon.main --config=configs/NAME.py --workdir=DIR [--config.a.b=value ...]

Runs (or resumes) the pipeline the config names. Multi-host: pass --distributed (or set
SKELETON_ANON_DISTRIBUTED=1) and jax.distributed.initialize() reads the coordinator from the
environment (TPU pods, SLURM) or from --coordinator/--num_processes/--process_id; CPU processes
need SKELETON_ANON_CPU_COLLECTIVES=gloo (launch/local_multiprocess.py sets it).
User errors print one line `error: ...` and exit 1.
"""

import logging as logging_std
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from skeleton_anon import cli
from skeleton_anon.errors import SkeletonAnonError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and reports.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', os.environ.get('SKELETON_ANON_DISTRIBUTED', '') == '1',
    'Call jax.distributed.initialize() before anything touches the devices.')
_COORDINATOR = flags.DEFINE_string('coordinator', None, 'host:port of process 0 (optional).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Process count (optional).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process index (optional).')


class _QuietLibraries(logging_std.Filter):
  """Drops Orbax's per-save INFO chatter so the run's own progress stays readable."""

  def filter(self, record):
    return record.levelno >= logging_std.WARNING or '/orbax/' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietLibraries())
  jax = cli.initialize_jax(distributed=_DISTRIBUTED.value, coordinator=_COORDINATOR.value,
                           num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info('JAX: %d processes, %d devices (%s)', jax.process_count(), jax.device_count(),
               jax.devices()[0].platform)
  from skeleton_anon import pipeline
  from skeleton_anon.train import loop
  try:
    pipeline.run(_CONFIG.value, _WORKDIR.value)
  except loop.StopRequested as e:
    print(f'stopped: {e}', file=sys.stderr)
  except SkeletonAnonError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


def run():
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=cli.parse_flags)


if __name__ == '__main__':
  run()
