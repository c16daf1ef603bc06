#!/usr/bin/env bash
# The pose-teacher measurement of experiments/issue18_explicit/README.md ("A label-free pose
# teacher"): E-RayZer tiny on walk, baseline vs + model.pose_teacher_weight, 15 process-CPU
# minutes each on the same pool of 32 clips, then `rayzer bench quality` on the held-out scenes.
#
# Usage: experiments/issue18_explicit/run_pose_teacher.sh TREE [WEIGHT]
#   TREE: the commit whose src/ is exported (git archive) and run through PYTHONPATH, so edits
#   in the shared working tree do not leak in. Steps are run by hand in the README's order;
#   this script only spells them out.
set -euo pipefail
TREE=${1:?commit}
WEIGHT=${2:-0.1}
E=experiments/issue18_explicit
S=/work/scratch/h2
R=/work/runs/h2
X=$S/tree_$(git rev-parse --short "$TREE")
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$X" "$R" "$S/teacher"
git archive "$TREE" src configs | tar -x -C "$X"
export PYTHONPATH=$X/src

# 1. the teacher cache of clips 0..31 (two shards side by side, then merged and scored)
for start in 0 16; do
  nice -n 10 python $E/build_pose_teacher.py --start $start --count 16 \
    --out $S/teacher/T$start.pt --json $S/teacher/T$start.json > $S/teacher/T$start.log 2>&1 &
done
wait
python $E/build_pose_teacher.py --merge $S/teacher/T0.pt $S/teacher/T16.pt \
  --out $R/teacher_walk32.pt --json $E/pose_teacher_walk32.json

# 2. the two arms, same seed and pool, 15 process-CPU minutes each
common=(data.family=walk data.clip_pool=32 train.time_budget_minutes=15
        train.time_budget_clock=process train.num_threads=1)
nice -n 10 rayzer train --config $X/configs/erayzer-tiny-cpu.yaml "${common[@]}" \
  train.out_dir=$R/baseline > $R/baseline.log 2>&1 &
nice -n 10 rayzer train --config $X/configs/erayzer-tiny-cpu.yaml "${common[@]}" \
  data.pose_teacher=$R/teacher_walk32.pt model.pose_teacher_weight=$WEIGHT \
  train.out_dir=$R/teacher > $R/teacher.log 2>&1 &
wait

# 3. held-out evaluation (no teacher at test time)
nice -n 10 rayzer bench quality --family walk \
  --runs baseline=$R/baseline teacher=$R/teacher --out $E/pose_teacher_bench
