# baseline (HEAD's src) then guided (2 px, ratio 0.8, consistent tracks), the 4 fox windows, no pycolmap
cd /work/main
# tree: git archive 2904e87 src
export PYTHONPATH=/work/scratch/m/tree/src OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ARGS="bench real-cameras --ckpt /work/runs/sbs/erayzer --data /work/shared/data/real --scenes fox_instantngp --windows consecutive --consecutive-windows 4 --refine 0 --matches --no-model-refine --threads 1"
echo "base start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v nice -n 10 /work/venv/bin/python -m rayzer.cli $ARGS --out /work/scratch/m/bench_base > /work/scratch/m/bench_base.log 2>&1
echo "base end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "guided start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v nice -n 10 /work/venv/bin/python experiments/issue19_refinement/matches_precision/bench_guided.py /work/scratch/m/guided_log.json 2 0.8 1 2 -- $ARGS --out /work/scratch/m/bench_guided > /work/scratch/m/bench_guided.log 2>&1
echo "guided end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
