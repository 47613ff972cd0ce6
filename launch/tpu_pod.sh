#!/usr/bin/env bash
# Runs skeleton_anon on every worker of a Cloud TPU VM pod slice.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=configs/etri_ens.py --workdir=gs://BUCKET/etri_ens \
#       [--config.a.b=value ...]
#
# Every worker runs the same command (gcloud ... ssh --worker=all). `--distributed` makes each
# process call jax.distributed.initialize(), which on a TPU pod finds the coordinator, process
# count and process id by itself; each process then feeds only its own rows of every global batch
# and process 0 alone writes the workdir (markers, checkpoints, reports, exports) and hands what it
# reads there to the others. A gs:// bucket keeps the results off the workers' disks (a local
# workdir works too: everything lands on worker 0). The dataset file must exist on every worker
# at the config's data.path, e.g. copied with
#   gcloud compute tpus tpu-vm scp data/etri_gender.npz TPU_NAME:~/skeleton_anon/data/ \
#       --zone=ZONE --worker=all
#
# Environment (optional):
#   REPO_DIR   this repository's checkout on the workers (default: ~/skeleton_anon)
#   PYTHON     interpreter on the workers (default: python3)
#   MODULE     skeleton_anon.main (default), or skeleton_anon.sweep for a sweep config
#   PROJECT    gcloud project (default: gcloud's configured one)
#   SETUP=1    first clone REPO_URL into REPO_DIR (or pull) and pip install it with jax[tpu]
set -euo pipefail

if [[ $# -lt 3 ]]; then
  sed -n '2,22p' "$0" >&2
  exit 2
fi
tpu=$1
zone=$2
shift 2

repo_dir=${REPO_DIR:-'~/skeleton_anon'}
python=${PYTHON:-python3}
module=${MODULE:-skeleton_anon.main}
project_flag=()
if [[ -n "${PROJECT:-}" ]]; then
  project_flag=(--project="${PROJECT}")
fi

# Quote each argument so overrides with spaces or brackets survive the remote shell.
quoted_args=""
for arg in "$@"; do
  quoted_args+=" $(printf '%q' "${arg}")"
done

setup=""
if [[ "${SETUP:-0}" == "1" ]]; then
  if [[ -z "${REPO_URL:-}" ]]; then
    echo "error: SETUP=1 needs REPO_URL, the git URL to clone on the workers" >&2
    exit 2
  fi
  setup="(test -d ${repo_dir}/.git || git clone $(printf '%q' "${REPO_URL}") ${repo_dir}) && \
git -C ${repo_dir} pull --ff-only && \
${python} -m pip install -q -U 'jax[tpu]' -e ${repo_dir} && "
fi

remote="${setup}cd ${repo_dir} && ${python} -m ${module} --distributed${quoted_args}"
echo "on every worker of ${tpu} (${zone}): ${remote}" >&2
exec gcloud compute tpus tpu-vm ssh "${tpu}" --zone="${zone}" "${project_flag[@]}" \
  --worker=all --command="${remote}"
