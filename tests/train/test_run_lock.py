"""One training per run folder: a second `rayzer train --out same` is refused while the first
runs, and a lock never outlives its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rayzer.cli import main
from rayzer.train.run_lock import LOCK_FILE, RunFolderBusy, run_folder_lock

HOLD = """
import sys, time
from rayzer.train.run_lock import run_folder_lock
with run_folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path: Path):
    """A separate process holding the lock of ``tmp_path / "run"`` until killed."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield run, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_second_training_on_a_locked_folder_is_refused(holder, tiny_overrides, capsys):
    run, proc = holder
    busy = rf"run folder {run} is in use .*process {proc.pid}"
    with pytest.raises(RunFolderBusy, match=busy), run_folder_lock(run):
        pass
    code = main(["train", "--config", "tiny-cpu", *tiny_overrides, "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and f"run folder {run} is in use by another training" in err, err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # the refused run wrote nothing


def test_a_killed_holder_leaves_no_stale_lock(holder):
    run, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with run_folder_lock(run):  # the kernel dropped the dead holder's lock
        assert (run / LOCK_FILE).read_text().strip() == str(os.getpid())
    with run_folder_lock(run, enabled=False):  # non-main ranks take no lock
        pass


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    run = tmp_path / "new_run"
    with pytest.raises(RuntimeError, match="boom"), run_folder_lock(run):
        raise RuntimeError("boom")
    assert not run.exists()
