"""``rayzer bench reliability``: the judging rules, the payload builders, and one quick section
end to end (the many-trial run is the benchmark's, in docs/benchmarks/reliability/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rayzer.bench.reliability_inputs import _raw_pickle, _torch_pickle, _yaml_payload
from rayzer.bench.reliability_tools import CliRun, judge_failure, judge_success, tiny_checkpoint
from rayzer.cli import main


def _run(code: int, stderr: str) -> CliRun:
    return CliRun(["rayzer"], code, "", stderr, 0.1)


def test_a_clean_failure_needs_code_2_a_named_file_no_traceback_and_no_output(tmp_path):
    clean = _run(2, "loading…\nrayzer: error: /data/x.jpg: truncated image\n")
    assert judge_failure(clean, ["x.jpg", "truncated"]) is None
    assert judge_failure(_run(0, ""), ["x.jpg"]) == "exited 0"
    assert judge_failure(_run(1, "Traceback (most recent call last):\n"), []) == "exit code 1"
    assert judge_failure(_run(2, "Traceback …\nrayzer: error: x.jpg\n"), []) == "traceback"
    assert "does not name ['y.png']" in judge_failure(clean, ["y.png"])
    assert "not a rayzer error" in judge_failure(_run(2, "Segmentation fault\n"), [])
    left = tmp_path / "out"
    (tmp_path / ".out.tmp123").mkdir()  # a staging folder of an atomic writer
    assert "left" in judge_failure(clean, ["x.jpg"], [left])
    assert judge_success(_run(0, ""), [tmp_path]) is None
    assert "missing outputs" in judge_success(_run(0, ""), [left])


@pytest.mark.parametrize("payload", [_raw_pickle, _torch_pickle], ids=["raw", "torch-zip"])
def test_a_pickle_payload_in_the_state_file_is_refused_and_never_runs(tmp_path, payload):
    from rayzer.checkpoints import STATE_FILE, read_checkpoint_config
    from rayzer.models import build_model
    from rayzer.train.checkpoint import load_checkpoint

    marker = tmp_path / "ran.marker"
    ckpt = tiny_checkpoint(tmp_path / "run")
    payload(marker)(ckpt / STATE_FILE)
    with pytest.raises(ValueError, match=STATE_FILE) as err:
        load_checkpoint(ckpt, build_model(read_checkpoint_config(ckpt).model))
    assert not marker.exists()
    # one line naming the refused global (torch's own text spans a dozen lines of advice)
    assert "\n" not in str(err.value) and "system" in str(err.value), str(err.value)


def test_a_yaml_payload_in_the_config_is_refused_and_never_runs(tmp_path):
    from rayzer.checkpoints import CONFIG_FILE, read_checkpoint_config

    marker = tmp_path / "ran.marker"
    ckpt = tiny_checkpoint(tmp_path / "run")
    _yaml_payload(marker)(ckpt / CONFIG_FILE)
    with pytest.raises(ValueError, match=CONFIG_FILE):
        read_checkpoint_config(ckpt)
    assert not marker.exists()


def test_quick_lock_section_end_to_end(tmp_path: Path, capsys):
    out = tmp_path / "report"
    argv = ["bench", "reliability", "--quick", "--sections", "lock", "--out", str(out),
            "--work", str(tmp_path / "work")]  # fmt: skip
    mine = tmp_path / "work" / "lock" / "run" / "keep.txt"  # where the section trains
    mine.parent.mkdir(parents=True)
    mine.write_text("the user's")
    assert main(argv) == 0
    assert mine.read_text() == "the user's"  # the scratch files went into a new subfolder
    result = json.loads((out / "reliability.json").read_text())
    (row,) = result["rows"]
    assert row["trials"] == 3 and row["failures"] == 0, result["checks"]
    assert "| check | trials | failures | detail |" in (out / "reliability.md").read_text()
    assert main(["bench", "reliability", "--sections", "nope"]) == 2
    assert "unknown ['nope']" in capsys.readouterr().err
