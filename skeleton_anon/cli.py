"""Pieces the pipeline command lines (`main`, `sweep`) share: flag parsing and JAX start-up."""

from __future__ import annotations

import os
import sys

from absl import flags


def parse_flags(argv):
  """absl flag parsing with every config mistake reported as one `error:` line, exit 1."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = str(e)
    if 'Traceback (most recent call last)' in message:
      # A config file's get_config raised: config_flags wraps the whole traceback into the flag
      # error; the user needs the file and the exception's own line.
      head = message.split('Traceback (most recent call last)')[0].rstrip(': \n')
      last = [line for line in message.splitlines() if line.strip()][-1].strip()
      message = f'{head}: {last}'
  except (AttributeError, KeyError) as e:
    # ml_collections raises these for a --config.a.b override whose key does not exist.
    missing = str(e).strip('"\'')
    culprits = [a.split('=')[0] for a in argv
                if a.startswith('--config.') and missing in a.split('=')[0].split('.')]
    where = culprits[0] if culprits else '--config'
    message = f'{where}: no such config key {missing!r}'
  except (TypeError, ValueError) as e:
    message = f'bad config override: {e}'
  print(f'error: {" ".join(message.split())}', file=sys.stderr)
  sys.exit(1)


def initialize_jax(*, distributed: bool, coordinator=None, num_processes=None, process_id=None):
  """Sets the CPU collectives backend (multi-process on CPU) and joins a multi-host job if asked."""
  import jax
  collectives = os.environ.get('SKELETON_ANON_CPU_COLLECTIVES')
  if collectives:
    # Multi-process on CPU (launch/local_multiprocess.py) needs a collectives backend.
    jax.config.update('jax_cpu_collectives_implementation', collectives)
  if distributed:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  return jax
