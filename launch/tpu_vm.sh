#!/usr/bin/env bash
# Run ssljax on a Cloud TPU VM (a single host or a pod slice): create or reuse the VM, install
# ssljax on every worker, run the same command on all of them (--worker=all; JAX finds the
# other hosts itself), stream the logs; rerun after a preemption (exit status 3) until done.
#
#   launch/tpu_vm.sh --name=mae-vitl --zone=us-central2-b --type=v4-64 \
#       -- --config=configs/mae_vitl.py --workdir=gs://BUCKET/mae_vitl
#   launch/tpu_vm.sh --name=mae-vitl --zone=us-central2-b --delete    # delete the VM
#
# Options: --version=RUNTIME (default tpu-ubuntu2204-base), --repo=GIT_URL (default: this
# checkout's origin), --ref=BRANCH_OR_COMMIT (default: this checkout's HEAD), --project=P,
# --spot (a preemptible spot VM), --max-restarts=N (default 20), --dry-run (print every command
# instead of running it). Everything after "--" goes to `python -m ssljax.main`.
set -euo pipefail

name="" zone="" type="" project="" version="tpu-ubuntu2204-base" repo="" ref="" spot=0
delete=0 dry_run=0 max_restarts=20 args=()
here="$(cd "$(dirname "$0")/.." && pwd)"
while [ $# -gt 0 ]; do
  case "$1" in
    --name=*) name="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --type=*) type="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --version=*) version="${1#*=}" ;;
    --repo=*) repo="${1#*=}" ;;
    --ref=*) ref="${1#*=}" ;;
    --spot) spot=1 ;;
    --delete) delete=1 ;;
    --dry-run) dry_run=1 ;;
    --max-restarts=*) max_restarts="${1#*=}" ;;
    --) shift; args=("$@"); break ;;
    *) echo "tpu_vm.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$name" ] && [ -n "$zone" ] || { echo "tpu_vm.sh: --name and --zone are required" >&2; exit 2; }

run() {  # prints the command; runs it unless --dry-run
  echo "+ $(printf '%q ' "$@")"
  [ "$dry_run" = 1 ] || "$@"
}
tpu=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[ -n "$project" ] && where+=(--project="$project")

if [ "$delete" = 1 ]; then
  run "${tpu[@]}" delete "$name" "${where[@]}" --quiet
  exit 0
fi
[ ${#args[@]} -gt 0 ] || { echo "tpu_vm.sh: give the ssljax.main flags after --" >&2; exit 2; }
[ -n "$repo" ] || repo="$(git -C "$here" remote get-url origin 2>/dev/null || echo "")"
[ -n "$ref" ] || ref="$(git -C "$here" rev-parse HEAD 2>/dev/null || echo main)"
[ -n "$repo" ] || { echo "tpu_vm.sh: no git origin here: pass --repo=GIT_URL" >&2; exit 2; }

exists=0
if [ "$dry_run" = 1 ]; then
  echo "+ $(printf '%q ' "${tpu[@]}" describe "$name" "${where[@]}")  # create if absent:"
elif "${tpu[@]}" describe "$name" "${where[@]}" >/dev/null 2>&1; then
  exists=1
  echo "tpu_vm.sh: reusing TPU VM $name" >&2
fi
if [ "$exists" = 0 ]; then
  [ -n "$type" ] || { echo "tpu_vm.sh: no TPU VM $name: pass --type (e.g. v4-8)" >&2; exit 2; }
  create=("${tpu[@]}" create "$name" "${where[@]}" --accelerator-type="$type" --version="$version")
  [ "$spot" = 1 ] && create+=(--spot)
  run "${create[@]}"
fi

on_all() { run "${tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command="$1"; }
on_all "set -e; [ -d ssljax ] || git clone -q $(printf '%q' "$repo") ssljax; cd ssljax; git fetch -q origin; git checkout -q $(printf '%q' "$ref"); pip install -q -e '.[gcs]' 'jax[tpu]'"

command="cd ssljax && python -m ssljax.main $(printf '%q ' "${args[@]}")"
for attempt in $(seq 0 "$max_restarts"); do
  status=0
  on_all "$command" || status=$?
  [ "$dry_run" = 1 ] && exit 0
  # 3: preempted after saving a checkpoint (see ssljax.main); rerunning resumes from it
  [ "$status" = 3 ] || exit "$status"
  echo "tpu_vm.sh: preempted (attempt $attempt); restarting from the last checkpoint" >&2
done
exit 3
