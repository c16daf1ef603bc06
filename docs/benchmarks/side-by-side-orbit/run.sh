#!/usr/bin/env bash
# The orbit side-by-side table (issue 18 item 6), as it was run for quality.{json,md,png}:
# four runs of 30 process-CPU minutes each (1 thread), trained from tree TREE's src/ + configs/
# (git archive, through PYTHONPATH, so edits in the working tree do not leak into a run), then
# `rayzer bench quality --runs …` from tree BENCH_TREE. README.md says which trees and why each
# train.steps was chosen.
#
# Usage: [FAMILY=walk] docs/benchmarks/side-by-side-orbit/run.sh TREE BENCH_TREE [RUNS_DIR]
# FAMILY (default orbit) picks the synthetic family the four train and are scored on; the results
# go to docs/benchmarks/side-by-side-$FAMILY.
set -euo pipefail
FAMILY=${FAMILY:-orbit}
TREE=${1:?commit of the training code}
BENCH_TREE=${2:?commit of the benchmark code}
if [[ $FAMILY == orbit ]]; then
  R=${3:-/work/runs/sbs2}  # the folder of the committed orbit table
else
  R=${3:?RUNS_DIR is required for FAMILY=$FAMILY (the default holds the orbit runs)}
fi
X=$(mktemp -d)/tree
B=$(mktemp -d)/bench
mkdir -p "$X" "$B" "$R"
git archive "$TREE" src configs | tar -x -C "$X"
git archive "$BENCH_TREE" src | tar -x -C "$B"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# What `rayzer bench quality --clock process --minutes 30` passes to every run it trains.
common=(data.family=$FAMILY train.num_threads=1 train.time_budget_minutes=30
        train.time_budget_clock=process train.keep_last=0)
# Each recipe's schedule scaled to S steps, S = 1.1 x (1800 CPU s / the measured CPU s per
# step), so that the budget, not the schedule, stops every run near the schedule's end.
# RayZer and the LVSM oracle: the bundled RayZer's recipe (src/rayzer/assets/rayzer-default/
# meta.json "command": steps 1600, curriculum 860, 32 px for the first 1330 steps).
# E-RayZer, NAS3R: their presets (steps 2000, curriculum 1000, no low-resolution phase).
train() {  # LABEL CONFIG ARGS...
  local label=$1 config=$2; shift 2
  echo "$(date -u +%FT%TZ) start $label load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$R/$label.log"
  PYTHONPATH=$X/src nice -n 5 rayzer train --config "$X/configs/$config.yaml" "$@" \
    "${common[@]}" train.out_dir="$R/$label" >> "$R/$label.log" 2>&1
  echo "$(date -u +%FT%TZ) end load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$R/$label.log"
}
pids=()
train erayzer erayzer-tiny-cpu train.steps=500 data.curriculum_steps=250 & pids+=($!)
train nas3r nas3r-tiny-cpu train.steps=860 data.curriculum_steps=430 & pids+=($!)
train rayzer tiny-cpu model.name=rayzer data.low_res_size=32 \
  train.steps=1540 data.curriculum_steps=828 data.low_res_steps=1280 & pids+=($!)
train lvsm tiny-cpu model.name=lvsm data.low_res_size=32 \
  train.steps=3110 data.curriculum_steps=1672 data.low_res_steps=2585 & pids+=($!)
for pid in "${pids[@]}"; do  # a failed training stops the script before the benchmark
  wait "$pid"
done

PYTHONPATH=$B/src nice -n 5 rayzer bench quality --family "$FAMILY" --runs rayzer="$R/rayzer" lvsm="$R/lvsm" \
  erayzer="$R/erayzer" nas3r="$R/nas3r" --out "docs/benchmarks/side-by-side-$FAMILY"
