#!/usr/bin/env python
r"""Starts N JAX processes on 127.0.0.1, each with its own CPU devices, like one multi-host job.

  python launch/local_multiprocess.py --num_processes=2 --devices_per_process=2 -- \
      python -m skeleton_anon.main --config=configs/demo.py --workdir=/tmp/demo_mp \
      --distributed --coordinator={coordinator} --num_processes={num_processes} \
      --process_id={process_id}

Everything after `--` is the command each process runs; `{coordinator}`, `{num_processes}` and
`{process_id}` in it are replaced per process. Each process also finds them in its environment
(JAX_COORDINATOR_ADDRESS, which jax.distributed.initialize reads itself,
SKELETON_ANON_NUM_PROCESSES, SKELETON_ANON_PROCESS_ID, SKELETON_ANON_DISTRIBUTED=1), and gets
JAX_PLATFORMS=cpu, its device count (JAX_NUM_CPU_DEVICES and XLA's
--xla_force_host_platform_device_count, any inherited count replaced) and gloo CPU collectives
(JAX_CPU_COLLECTIVES_IMPLEMENTATION, SKELETON_ANON_CPU_COLLECTIVES), which is what lets CPU
processes all-reduce across each other. It runs any command and stops the others when one
process fails.

This is the multi-host code path on one machine: the same jax.distributed.initialize, the same
process-local batches and cross-process collectives as a TPU pod or a SLURM GPU job, so it tests
them without a cluster. Exit status: 0 when every process succeeded, else the first failure's
status (the remaining processes are stopped).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from typing import Sequence

_DEVICE_COUNT_FLAG = re.compile(r'--xla_force_host_platform_device_count=\S+')


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago (the coordinator binds it next)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def process_env(base: dict, *, coordinator: str, num_processes: int, process_id: int,
                devices_per_process: int) -> dict:
  """The environment of process `process_id`: coordinates, CPU devices, gloo collectives."""
  env = dict(base)
  xla_flags = _DEVICE_COUNT_FLAG.sub('', env.get('XLA_FLAGS', '')).split()
  xla_flags.append(f'--xla_force_host_platform_device_count={devices_per_process}')
  env.update({
      'XLA_FLAGS': ' '.join(xla_flags),
      'JAX_PLATFORMS': 'cpu',
      'JAX_NUM_CPU_DEVICES': str(devices_per_process),
      'JAX_CPU_COLLECTIVES_IMPLEMENTATION': 'gloo',
      'SKELETON_ANON_CPU_COLLECTIVES': 'gloo',   # what skeleton_anon.main reads
      'JAX_COORDINATOR_ADDRESS': coordinator,
      'SKELETON_ANON_DISTRIBUTED': '1',
      'SKELETON_ANON_NUM_PROCESSES': str(num_processes),
      'SKELETON_ANON_PROCESS_ID': str(process_id),
  })
  return env


def process_command(command: Sequence[str], *, coordinator: str, num_processes: int,
                    process_id: int) -> list[str]:
  """`command` with {coordinator}, {num_processes} and {process_id} filled in."""
  values = {'{coordinator}': coordinator, '{num_processes}': str(num_processes),
            '{process_id}': str(process_id)}
  out = []
  for arg in command:
    for placeholder, value in values.items():
      arg = arg.replace(placeholder, value)
    out.append(arg)
  return out


def launch(command: Sequence[str], *, num_processes: int, devices_per_process: int,
           port: int = 0, log_dir: str | None = None, timeout: float | None = None,
           cwd: str | None = None) -> list[int]:
  """Runs `command` as `num_processes` coordinated processes; returns their exit statuses.

  With `log_dir`, process i writes stdout and stderr to log_dir/process_<i>.log; otherwise they go
  to this process's own. When one process fails or `timeout` seconds pass, the others are stopped
  (a process blocked in a collective would otherwise wait for its dead peer forever).
  """
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError('num_processes and devices_per_process must be >= 1')
  if not command:
    raise ValueError('no command to run (give it after --)')
  coordinator = f'127.0.0.1:{port or free_port()}'
  if log_dir:
    os.makedirs(log_dir, exist_ok=True)
  procs, logs = [], []
  try:
    for i in range(num_processes):
      env = process_env(os.environ, coordinator=coordinator, num_processes=num_processes,
                        process_id=i, devices_per_process=devices_per_process)
      args = process_command(command, coordinator=coordinator, num_processes=num_processes,
                             process_id=i)
      out = None
      if log_dir:
        out = open(os.path.join(log_dir, f'process_{i}.log'), 'w')
        logs.append(out)
      procs.append(subprocess.Popen(args, env=env, cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT if out else None))
    return _wait_all(procs, timeout)
  finally:
    _stop(procs)
    for f in logs:
      f.close()


def _wait_all(procs: list[subprocess.Popen], timeout: float | None) -> list[int]:
  deadline = None if timeout is None else time.monotonic() + timeout
  while True:
    codes = [p.poll() for p in procs]
    if all(c is not None for c in codes):
      return codes
    if any(c not in (None, 0) for c in codes):
      _stop(procs)
      return [p.wait() for p in procs]
    if deadline is not None and time.monotonic() > deadline:
      _stop(procs)
      return [p.wait() for p in procs]
    time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
  """Terminates (then kills) the processes this launcher started that are still running."""
  for p in procs:
    if p.poll() is None:
      p.terminate()
  for p in procs:
    try:
      p.wait(timeout=10)
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()


def initialize_from_env() -> None:
  """jax.distributed.initialize for a process started by this launcher (or given the same env).

  For worker scripts that do not take --coordinator/--num_processes/--process_id flags. Call it
  before anything touches the devices.
  """
  import jax
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=os.environ['JAX_COORDINATOR_ADDRESS'],
                             num_processes=int(os.environ['SKELETON_ANON_NUM_PROCESSES']),
                             process_id=int(os.environ['SKELETON_ANON_PROCESS_ID']))


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  command = []
  if '--' in argv:
    split = argv.index('--')
    argv, command = argv[:split], argv[split + 1:]
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--num_processes', type=int, default=2)
  parser.add_argument('--devices_per_process', type=int, default=2)
  parser.add_argument('--port', type=int, default=0, help='coordinator port (0: a free one)')
  parser.add_argument('--log_dir', default=None, help='one log file per process (default: '
                      'all output to this terminal)')
  parser.add_argument('--timeout', type=float, default=None, help='seconds before all stop')
  args = parser.parse_args(argv)
  try:
    codes = launch(command, num_processes=args.num_processes,
                   devices_per_process=args.devices_per_process, port=args.port,
                   log_dir=args.log_dir, timeout=args.timeout)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  failed = [(i, c) for i, c in enumerate(codes) if c != 0]
  for i, c in failed:
    print(f'process {i} exited with status {c}', file=sys.stderr)
  # A negative status is a signal (the launcher stopped that process): report plain failure.
  return (failed[0][1] if failed[0][1] > 0 else 1) if failed else 0


if __name__ == '__main__':
  sys.exit(main())
