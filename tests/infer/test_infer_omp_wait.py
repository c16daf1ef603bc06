"""``rayzer infer`` asks OpenMP to sleep, not spin, while its threads wait (a spinning thread
stalls the others on shared cores); a value the user set is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = (
    "import os, sys, rayzer.cli\n"
    "try:\n"
    "    rayzer.cli.main([sys.argv[1], '--help'])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('POLICY', os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
)


def _policy(command: str, env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, command], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith("POLICY "))
    _, policy, torch_loaded = line.split()
    assert torch_loaded == "True"  # the parser loads torch: the variable was set before that
    return policy


@pytest.mark.parametrize(
    ("command", "env_value", "expected"),
    [("infer", None, "PASSIVE"), ("infer", "ACTIVE", "ACTIVE"), ("eval", None, "None")],
)
def test_omp_wait_policy(command, env_value, expected):
    assert _policy(command, env_value) == expected
