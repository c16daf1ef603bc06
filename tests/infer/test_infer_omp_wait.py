"""``rayzer infer`` / ``demo`` / ``serve`` / ``eval`` ask OpenMP to sleep, not spin, while their
threads wait (a spinning thread stalls the others on shared cores); a value the user set is
kept; ``train`` keeps OpenMP's default (spinning was faster there on an idle machine).

OpenMP reads the variable once, when torch loads it: the probe records its value at the moment
``torch`` is first imported, and (where torch's OpenMP is libgomp, as in the Linux wheels)
libgomp's own report of its spin count (``OMP_DISPLAY_ENV=VERBOSE``: 0 means passive)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

_PROBE = (
    "import os, sys\n"
    "class Spy:  # records the variable when torch is first imported\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch':\n"
    "            print('AT_TORCH_IMPORT', os.environ.get('OMP_WAIT_POLICY'))\n"
    "            sys.meta_path.remove(self)\n"
    "sys.meta_path.insert(0, Spy())\n"
    "import rayzer.cli\n"
    "try:\n"
    "    rayzer.cli.main([sys.argv[1], '--help'])\n"
    "except SystemExit:\n"
    "    pass\n"
    "import torch  # `--help` of a command may not load torch; running it would, now\n"
)


def _policy(command: str, env_value: str | None) -> tuple[str, str | None]:
    """The policy seen when torch was imported, and libgomp's spin count (None: no report)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, command], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("AT_TORCH_IMPORT "))
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", proc.stderr)
    return line.split()[1], spin.group(1) if spin else None


@pytest.mark.parametrize(
    ("command", "env_value", "expected"),
    [
        ("infer", None, "PASSIVE"),
        ("infer", "ACTIVE", "ACTIVE"),
        ("demo", None, "PASSIVE"),
        ("serve", None, "PASSIVE"),
        ("eval", None, "PASSIVE"),
        ("train", None, "None"),  # measured slower passive on an idle machine (rayzer.cli)
        ("bench", None, "None"),
    ],
)
def test_omp_wait_policy(command, env_value, expected):
    policy, spin = _policy(command, env_value)
    assert policy == expected  # set before torch (and its OpenMP) loads
    if spin is not None:  # libgomp: the policy took effect
        assert (spin == "0") == (expected == "PASSIVE")
