#!/usr/bin/env bash
# Issue 18, walk: the label-free pose teacher x the pair input, 2 x 2, at the walk side-by-side
# table's E-RayZer budget (docs/benchmarks/side-by-side-walk: erayzer-tiny-cpu, train.steps=500,
# data.curriculum_steps=250, 30 process-CPU minutes at 1 thread). All four arms train on the
# teacher's pool of 32 walk clips (data.clip_pool=32; the table's run streamed fresh clips), from
# one exported tree, same seed; then one `rayzer bench quality --family walk` over the four.
#
# Usage: experiments/issue18_explicit/run_teacher_pair_walk.sh TREE RUNS_DIR TEACHER_CACHE OUT
#   TEACHER_CACHE: the pool-32 walk teacher (build_pose_teacher.py; teacher_walk32.pt)
set -euo pipefail
TREE=${1:?commit}
R=${2:?runs folder}
TEACHER=${3:?pose-teacher cache}
OUT=${4:?benchmark output folder}
X=$(mktemp -d)/tree
mkdir -p "$X" "$R"
git archive "$TREE" src configs | tar -x -C "$X"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(data.family=walk data.clip_pool=32 train.steps=500 data.curriculum_steps=250
        train.num_threads=1 train.time_budget_minutes=30 train.time_budget_clock=process
        train.keep_last=0)
teacher=(data.pose_teacher="$TEACHER" model.pose_teacher_weight=0.1)
train() {  # LABEL ARGS...
  local label=$1; shift
  echo "$(date -u +%FT%TZ) start $label load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$R/$label.log"
  PYTHONPATH=$X/src nice -n 5 rayzer train --config "$X/configs/erayzer-tiny-cpu.yaml" "$@" \
    "${common[@]}" train.out_dir="$R/$label" >> "$R/$label.log" 2>&1
  echo "$(date -u +%FT%TZ) end load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$R/$label.log"
}
pids=()
train baseline & pids+=($!)
train pair model.pose_pair_input=true & pids+=($!)
train teacher "${teacher[@]}" & pids+=($!)
train teacher_pair "${teacher[@]}" model.pose_pair_input=true & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done  # a failed training stops the script
PYTHONPATH=$X/src nice -n 5 rayzer bench quality --family walk --curve-points 0 \
  --runs baseline="$R/baseline" pair="$R/pair" teacher="$R/teacher" \
  teacher_pair="$R/teacher_pair" --out "$OUT"
