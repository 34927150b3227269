#!/usr/bin/env bash
# Run ssljax on SLURM GPU nodes: one process per GPU (`srun --ntasks-per-node=GPUS`); ssljax
# detects SLURM and calls jax.distributed.initialize, each process reads its slice of every
# global batch. Reruns the step after a preemption (exit status 3) until the run is done.
#
#   launch/gpu_slurm.sh --nodes=4 --gpus-per-node=8 --partition=gpu --time=48:00:00 \
#       -- --config=configs/mae_vitl.py --workdir=/shared/runs/mae_vitl
#
# Call it inside an allocation (salloc/sbatch) or on a login node (srun then allocates).
# Options: --account=A, --venv=PATH (activated on every node, default .venv of this checkout),
# --max-restarts=N (default 20), --dry-run (print the srun command instead of running it).
# Everything after "--" goes to `python -m ssljax.main`.
# Exports XLA_FLAGS with the GPU flags of GPU_XLA_FLAGS added to yours (a flag you set wins);
# srun passes the environment to every task.
set -euo pipefail

# Overlaps collectives (FSDP's all-gathers, the gradients' reduce-scatters) with compute:
# JAX's GPU performance tips and NVIDIA's JAX images set it.
GPU_XLA_FLAGS=(--xla_gpu_enable_latency_hiding_scheduler=true)

nodes=1 gpus=8 partition="" time_limit="" account="" dry_run=0 max_restarts=20 args=()
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv"
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) nodes="${1#*=}" ;;
    --gpus-per-node=*) gpus="${1#*=}" ;;
    --partition=*) partition="${1#*=}" ;;
    --time=*) time_limit="${1#*=}" ;;
    --account=*) account="${1#*=}" ;;
    --venv=*) venv="${1#*=}" ;;
    --dry-run) dry_run=1 ;;
    --max-restarts=*) max_restarts="${1#*=}" ;;
    --) shift; args=("$@"); break ;;
    *) echo "gpu_slurm.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#args[@]} -gt 0 ] || { echo "gpu_slurm.sh: give the ssljax.main flags after --" >&2; exit 2; }

srun_cmd=(srun --nodes="$nodes" --ntasks-per-node="$gpus" --gpus-per-node="$gpus"
          --cpus-per-task=8 --kill-on-bad-exit=1)
[ -n "$partition" ] && srun_cmd+=(--partition="$partition")
[ -n "$time_limit" ] && srun_cmd+=(--time="$time_limit")
[ -n "$account" ] && srun_cmd+=(--account="$account")
# Each task sees its node's GPUs; JAX picks the task's own one from SLURM_LOCALID.
srun_cmd+=(bash -c "cd $(printf '%q' "$here") && source $(printf '%q' "$venv")/bin/activate && exec python -m ssljax.main $(printf '%q ' "${args[@]}")")

for flag in "${GPU_XLA_FLAGS[@]}"; do
  case " ${XLA_FLAGS:-} " in *" ${flag%%=*}="*) ;; *) XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }$flag" ;; esac
done
export XLA_FLAGS
echo "+ export XLA_FLAGS=$(printf '%q' "$XLA_FLAGS")"
echo "+ $(printf '%q ' "${srun_cmd[@]}")"
[ "$dry_run" = 1 ] && exit 0
for attempt in $(seq 0 "$max_restarts"); do
  status=0
  "${srun_cmd[@]}" || status=$?
  [ "$status" = 3 ] || exit "$status"
  echo "gpu_slurm.sh: preempted (attempt $attempt); restarting from the last checkpoint" >&2
done
exit 3
