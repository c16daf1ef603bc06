"""The matches' rows of real_cameras.json files side by side (3 decimals): median rotation /
translation-direction error, registered views, focal (model px), seconds.

python bench_rows.py NAME=path/real_cameras.json ...
"""

import json
import sys
from pathlib import Path

runs = dict(a.split("=", 1) for a in sys.argv[1:])
data = {n: json.loads(Path(p).read_text()) for n, p in runs.items()}
print("| window | " + " | ".join(runs) + " |")
print("|---|" + "---|" * len(runs))
first = next(iter(data.values()))
for k, row in enumerate(first["rows"]):
    cells = []
    for d in data.values():
        m = d["rows"][k]["methods"]["matches"]
        if m.get("status") != "ok":
            cells.append(m.get("status", "?"))
            continue
        rep = m["matches"]
        cells.append(
            f"{m['rot_err_deg_median']:.3f} / {m['trans_dir_err_deg_median']:.3f} "
            f"({m['registered']}/8) · f {rep.get('focal_px')} · {m['seconds']:.1f} s"
        )
    print(f"| {row['scene']} {row['frames'][0]}-{row['frames'][-1]} | " + " | ".join(cells) + " |")
