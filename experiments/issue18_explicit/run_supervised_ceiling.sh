#!/usr/bin/env bash
# The supervised-ceiling measurement of experiments/issue18_explicit/README.md ("The supervised
# ceiling"): E-RayZer tiny on orbit, render loss only vs + model.pose_teacher_weight with the
# GROUND-TRUTH cameras of the pool as the teacher (build_truth_teacher.py; not label-free), 20
# process-CPU minutes each on the same pool of 256 clips, then `rayzer bench quality` on the
# held-out scenes.
#
# Usage: experiments/issue18_explicit/run_supervised_ceiling.sh TREE [WEIGHT]
#   TREE: the commit whose src/ is exported (git archive) and run through PYTHONPATH, so edits
#   in the shared working tree do not leak in.
set -euo pipefail
TREE=${1:?commit}
WEIGHT=${2:-1.0}
E=experiments/issue18_explicit
R=/work/runs/ceiling
X=/work/scratch/a/tree_$(git rev-parse --short "$TREE")
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$X" "$R"
git archive "$TREE" src configs | tar -x -C "$X"
export PYTHONPATH=$X/src

# 1. the truth cache of clips 0..255 (cameras only: ~30 CPU s)
python $E/build_truth_teacher.py --family orbit --count 256 --out $R/truth_orbit256.pt \
  --json $E/supervised_ceiling/truth_orbit256.json

# 2. the two arms side by side, same seed and pool, 20 process-CPU minutes each
common=(data.family=orbit data.clip_pool=256 train.time_budget_minutes=20
        train.time_budget_clock=process train.num_threads=1 train.keep_last=0)
nice -n 10 rayzer train --config $X/configs/erayzer-tiny-cpu.yaml "${common[@]}" \
  train.out_dir=$R/baseline > $R/baseline.log 2>&1 &
nice -n 10 rayzer train --config $X/configs/erayzer-tiny-cpu.yaml "${common[@]}" \
  data.pose_teacher=$R/truth_orbit256.pt model.pose_teacher_weight=$WEIGHT \
  train.out_dir=$R/supervised > $R/supervised.log 2>&1 &
wait

# 3. held-out evaluation (no teacher at test time)
nice -n 10 rayzer bench quality --family orbit --runs supervised=$R/supervised \
  baseline=$R/baseline --curve-points 0 --out $E/supervised_ceiling
