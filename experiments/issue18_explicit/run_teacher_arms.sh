#!/usr/bin/env bash
# Issue 18: arms of the label-free pose teacher x the pair input, for one explicit model on one
# synthetic family, at the side-by-side tables' budget for that model
# (docs/benchmarks/side-by-side-{orbit,walk}: 30 process-CPU minutes at 1 thread, the tables'
# train.steps / curriculum, which are the same on both families). Every arm trains on the
# teacher's pool of 32 clips (data.clip_pool=32; the tables' runs streamed fresh clips), from one
# exported tree, same seed; then one `rayzer bench quality --family FAMILY` over the arms.
#
# Usage: experiments/issue18_explicit/run_teacher_arms.sh FAMILY MODEL TREE RUNS_DIR TEACHER OUT ARM...
#   FAMILY: orbit | walk;  MODEL: erayzer | nas3r;
#   TEACHER: a pool-32 teacher cache of that family (build_pose_teacher.py);
#   ARM: baseline | pair | teacher | teacher_pair (trained side by side, 1 thread each)
# EXTRA (env, optional): more key=value overrides for every arm, e.g. EXTRA="train.seed=1".
set -euo pipefail
FAMILY=${1:?orbit or walk}
MODEL=${2:?erayzer or nas3r}
TREE=${3:?commit}
R=${4:?runs folder}
TEACHER=${5:?pose-teacher cache}
OUT=${6:?benchmark output folder}
shift 6
(($#)) || { echo "name at least one arm" >&2; exit 2; }
case $MODEL in  # the tables' schedules (run.sh in docs/benchmarks/side-by-side-orbit)
  erayzer) schedule=(train.steps=500 data.curriculum_steps=250) pair=model.pose_pair_input=true ;;
  nas3r) schedule=(train.steps=860 data.curriculum_steps=430) pair=model.pair_input=true ;;
  *) echo "unknown model $MODEL" >&2; exit 2 ;;
esac
X=$(mktemp -d)/tree
mkdir -p "$X" "$R"
git archive "$TREE" src configs | tar -x -C "$X"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(data.family="$FAMILY" data.clip_pool=32 "${schedule[@]}" train.num_threads=1
        train.time_budget_minutes=30 train.time_budget_clock=process train.keep_last=0)
read -r -a extra <<< "${EXTRA:-}"
common+=("${extra[@]}")
teacher=(data.pose_teacher="$TEACHER" model.pose_teacher_weight=0.1)
pids=()
runs=()
for arm in "$@"; do
  case $arm in
    baseline) args=() ;;
    pair) args=("$pair") ;;
    teacher) args=("${teacher[@]}") ;;
    teacher_pair) args=("${teacher[@]}" "$pair") ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  (
    echo "$(date -u +%FT%TZ) start $arm load $(cut -d' ' -f1-3 /proc/loadavg)"
    PYTHONPATH=$X/src nice -n 5 rayzer train --config "$X/configs/$MODEL-tiny-cpu.yaml" \
      "${args[@]}" "${common[@]}" train.out_dir="$R/$arm" 2>&1
    echo "$(date -u +%FT%TZ) end load $(cut -d' ' -f1-3 /proc/loadavg)"
  ) >> "$R/$arm.log" &
  pids+=($!)
  runs+=("$arm=$R/$arm")
done
for pid in "${pids[@]}"; do wait "$pid"; done  # a failed training stops the script
PYTHONPATH=$X/src nice -n 5 rayzer bench quality --family "$FAMILY" --curve-points 0 \
  --runs "${runs[@]}" --out "$OUT"
