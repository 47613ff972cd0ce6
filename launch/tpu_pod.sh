#!/usr/bin/env bash
# Cloud TPU VM pod slice: the same command on every worker; jax.distributed.initialize() finds the
# coordinator itself. The workdir must be shared storage (e.g. a gs:// bucket mounted or a path
# Orbax can write on every host).
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/etri_ens.py --workdir=/mnt/shared/etri_ens
set -euo pipefail
tpu=${1:?TPU name}; zone=${2:?zone}; shift 2
gcloud compute tpus tpu-vm ssh "${tpu}" --zone="${zone}" --worker=all --command="\
  cd skeleton_anon && python -m skeleton_anon.main --distributed $*"
