cd /work/main
# tree: git archive 2904e87 src + matched_cameras.py with ba_lsmr_tol (as c1bea22, docstring aside)
export PYTHONPATH=/work/scratch/m/tree2/src OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ARGS="bench real-cameras --ckpt /work/runs/sbs/erayzer --data /work/shared/data/real --scenes middlebury_templeSparseRing --windows consecutive --consecutive-windows 4 --refine 0 --matches --no-model-refine --colmap --threads 1"
echo "temple start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v nice -n 10 /work/venv/bin/python experiments/issue19_refinement/matches_precision/bench_config.py 'ba_lsmr_tol=1e-10' -- $ARGS --out /work/scratch/m/bench_tol_temple > /work/scratch/m/bench_tol_temple.log 2>&1
echo "temple end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
