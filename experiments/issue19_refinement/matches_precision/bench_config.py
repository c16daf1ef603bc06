"""rayzer bench real-cameras with MatchConfig fields changed (the library's defaults otherwise).

python bench_config.py 'FIELD=VALUE,...' -- <rayzer arguments>   e.g. 'ba_lsmr_tol=1e-10'
"""

import dataclasses
import sys

import rayzer.refine.matched_cameras as mc
from rayzer.cli import main

if __name__ == "__main__":
    fields, sep, *argv = sys.argv[1:]
    assert sep == "--", __doc__
    changes = {k: eval(v) for k, v in (kv.split("=", 1) for kv in fields.split(","))}
    original = mc.cameras_from_matches

    def with_changes(*args, config=None, **kw):
        return original(
            *args, config=dataclasses.replace(config or mc.MatchConfig(), **changes), **kw
        )

    mc.cameras_from_matches = with_changes
    sys.exit(main(argv))
