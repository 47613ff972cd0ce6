#!/usr/bin/env bash
# Runs the pipeline as N JAX processes on this machine (127.0.0.1), each with D CPU devices,
# talking through gloo CPU collectives: the multi-host code path without a cluster.
#   launch/local_multiprocess.sh N D --config=configs/demo.py --workdir=/tmp/mp [--config.x=y ...]
set -euo pipefail
num_processes=${1:?number of processes}; devices=${2:?devices per process}; shift 2
port=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
for ((i = 0; i < num_processes; i++)); do
  XLA_FLAGS="--xla_force_host_platform_device_count=${devices}" JAX_PLATFORMS=cpu \
  SKELETON_ANON_CPU_COLLECTIVES=gloo \
    python -m skeleton_anon.main --distributed --coordinator="127.0.0.1:${port}" \
      --num_processes="${num_processes}" --process_id="${i}" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "${pid}" || status=$?; done
exit "${status}"
