# HEAD's src + ba_lsmr_tol option (tree2), run with ba_lsmr_tol=1e-10: every posed scene, 4 consecutive windows
cd /work/main
# tree: git archive 2904e87 src + matched_cameras.py with ba_lsmr_tol (as c1bea22, docstring aside)
export PYTHONPATH=/work/scratch/m/tree2/src OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ARGS="bench real-cameras --ckpt /work/runs/sbs/erayzer --data /work/shared/data/real --windows consecutive --consecutive-windows 4 --refine 0 --matches --no-model-refine --threads 1"
echo "tol start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v nice -n 10 /work/venv/bin/python experiments/issue19_refinement/matches_precision/bench_config.py 'ba_lsmr_tol=1e-10' -- $ARGS --out /work/scratch/m/bench_tol > /work/scratch/m/bench_tol.log 2>&1
echo "tol end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
