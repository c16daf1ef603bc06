"""rayzer bench real-cameras with the guided step of guided.py after the library's re-pose.

python bench_guided.py LOG.json BAND RATIO CONSISTENT MIN_LEN -- <rayzer arguments>
  e.g. bench_guided.py guided_log.json 2 0.8 1 2 -- bench real-cameras --matches ...
LOG.json: each cameras_from_matches call's first-solve tracks and guided step (guided.LOG).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guided

from rayzer.cli import main

if __name__ == "__main__":
    log, band, ratio, consistent, min_len, sep, *argv = sys.argv[1:]
    assert sep == "--", __doc__
    guided.install(band_px=float(band), ratio=float(ratio), consistent=bool(int(consistent)),
                   min_len=int(min_len))  # fmt: skip
    try:
        code = main(argv)
    finally:
        Path(log).write_text(json.dumps(guided.LOG, indent=1) + "\n")
    sys.exit(code)
