#!/usr/bin/env bash
# The orbit pose-teacher measurements (issue 18). The probe and the builds ran from the
# /work/main working tree (not an exported tree) while it moved from da6a037 to 78b4a69; in
# between, src/rayzer/refine changed only in a docstring (071e802) and build_pose_teacher.py only
# in its --merge check (2412555), so the cameras are da6a037's; the merge ran on 78b4a69. From the repository root, 1 thread each, on the shared loaded machine (the trainings
# beside them logged load 7-9).
set -euo pipefail
E=experiments/issue18_explicit
D=$E/orbit_teacher
W=${1:?scratch folder for the caches}
# 1) probe: the first 4 training clips, every pair vs sequential windows (probe4_gap*.json)
for gap in 1 2 3 none; do
  extra=(); [[ $gap != none ]] && extra=(--max-gap "$gap")
  OMP_NUM_THREADS=1 python $E/build_pose_teacher.py --family orbit --start 0 --count 4 \
    "${extra[@]}" --out "$W/probe_gap$gap.pt" --json "$D/probe4_gap$gap.json"
done
# 2) the pool-32 teacher at gap 1, two shards side by side, merged and scored
#    (pose_teacher_orbit32_gap1.json; the cache is what data.pose_teacher reads)
for s in 0 16; do
  OMP_NUM_THREADS=1 python $E/build_pose_teacher.py --family orbit --start $s --count 16 \
    --max-gap 1 --out "$W/orbit32_gap1_s$s.pt" &
done
wait
python $E/build_pose_teacher.py --family orbit --merge "$W/orbit32_gap1_s0.pt" \
  "$W/orbit32_gap1_s16.pt" --out "$W/teacher_orbit32_gap1.pt" --json "$D/pose_teacher_orbit32_gap1.json"
