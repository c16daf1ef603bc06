"""torch.compile vs eager for one tiny-cpu training step (issue 20, part 3).

Usage (one thread; the inductor caches go to ``TORCHINDUCTOR_CACHE_DIR``):

    TORCHINDUCTOR_CACHE_DIR=/tmp/ind python experiments/issue20_speed/compile_step.py MODE

MODE: ``whole`` (``torch.compile`` of the model), ``blocks`` (each ``TransformerBlock``
compiled in place) or ``sweep`` (the sweep readout's per-chunk function). Run it twice with the
same cache folder: the first run is the cold compile and the second the warm one. It prints one
JSON line with these fields:
- eager and compiled CPU seconds per step (3 each, after warm-up, fwd + bwd + AdamW);
- the wall and CPU seconds of the first compiled step (the compile);
- the median speed-up.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch

import rayzer.models.readouts as readouts
from rayzer.bench.speed import random_batch
from rayzer.config import load_config
from rayzer.models import build_model
from rayzer.nn.transformer import TransformerBlock


def main() -> None:
    torch.set_num_threads(1)
    mode = sys.argv[1]
    preset = sys.argv[2] if len(sys.argv) > 2 else "tiny-cpu"
    cfg = load_config(preset, sys.argv[3:])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, v = cfg.train.batch_size, cfg.data.num_views
    batch = random_batch(b, v, cfg.data.image_size, "cpu")
    perm = torch.randperm(v)
    vi = cfg.data.num_input_views
    inp, tgt = perm[:vi].sort().values, perm[vi:].sort().values

    def make_step(forward):
        def step() -> None:
            loss = model.loss(forward(batch, inp, tgt), batch, None)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    def cpu_times(step, n: int) -> list[float]:
        out = []
        for _ in range(n):
            c0 = time.process_time()
            step()
            out.append(time.process_time() - c0)
        return out

    eager = make_step(model)
    cpu_times(eager, 2)
    eager_s = cpu_times(eager, 3)
    forward = model
    if mode == "whole":
        forward = torch.compile(model)
    elif mode == "blocks":
        for module in model.modules():
            if isinstance(module, TransformerBlock):
                module.compile()
    elif mode == "sweep":
        readouts._sweep_chunk = torch.compile(readouts._sweep_chunk)
    else:
        raise SystemExit(f"unknown mode {mode!r}: whole, blocks or sweep")
    compiled = make_step(forward)
    t0, c0 = time.perf_counter(), time.process_time()
    compiled()
    first_wall, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    cpu_times(compiled, 1)
    compiled_s = cpu_times(compiled, 3)
    print(
        json.dumps(
            {
                "mode": mode,
                "preset": preset,
                "cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
                "eager_cpu_s": eager_s,
                "compiled_cpu_s": compiled_s,
                "first_step_wall_s": first_wall,
                "first_step_cpu_s": first_cpu,
                "speedup_median": statistics.median(eager_s) / statistics.median(compiled_s),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
