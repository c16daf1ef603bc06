"""``rayzer infer --refine STEPS`` ends with one printed line saying what the refinement did (the
figures of ``summary.json["refine"]``): PSNRs before -> after, time, which cameras were kept."""

from __future__ import annotations

import json
from pathlib import Path

from _tiny import orbit_photos
from rayzer.infer.cli import refine_summary_line

SIZE = 32

REFINED = {
    "steps": 150,
    "reprojection_psnr_before": 16.2,
    "reprojection_psnr_after": 18.314,
    "iterations": 118,
    "seconds": 30.1,
    "stopped": None,
    "held_out": {"view": 5, "psnr_before": 19.986, "psnr_after": 21.906},
    "rejected": None,
    "cameras": "refined",
    "total_seconds": 41.27,
}


def test_the_line_of_a_kept_refinement():
    assert refine_summary_line(REFINED) == (
        "refine: reprojection PSNR 16.20 -> 18.31 dB, left-out view 5 19.99 -> 21.91 dB, "
        "118 iterations, 41.27 s; kept the refined cameras"
    )


def test_the_line_of_a_rejected_refinement():
    report = {
        **REFINED,
        "held_out": {"view": 2, "psnr_before": 8.104, "psnr_after": 7.823},
        "rejected": "the leave-one-out PSNR of view 2 fell (8.104 -> 7.823 dB) although ...",
        "cameras": "input",
        "held": [5, 6, 7],
    }
    assert refine_summary_line(report) == (
        "refine: reprojection PSNR 16.20 -> 18.31 dB, left-out view 2 8.10 -> 7.82 dB, "
        "118 iterations, views [5, 6, 7] held, 41.27 s; kept the input cameras (rejected by the "
        "leave-one-out check)"
    )


def test_the_line_of_a_stopped_refinement_names_why():
    report = {
        **REFINED,
        "reprojection_psnr_after": None,
        "stopped": "refinement stopped: a camera rotated 20.1° > 20°; the input cameras are kept",
        "cameras": "input",
    }
    line = refine_summary_line(report)
    assert "reprojection PSNR 16.20 -> n/a dB" in line
    assert line.endswith(
        "; kept the input cameras (refinement stopped: a camera rotated 20.1° > 20°)"
    )


def test_the_line_of_a_refinement_not_run():
    report = {
        "steps": 150,
        "held": [0, 1, 2],
        "stopped": "refinement not run: every view's camera is held; the input cameras are kept",
        "rejected": None,
        "cameras": "input",
        "total_seconds": 0.0,
    }
    assert refine_summary_line(report) == (
        "refine: views [0, 1, 2] held, 0.0 s; kept the input cameras (refinement not run: "
        "every view's camera is held)"
    )


def test_cli_refine_prints_the_line_of_its_summary(cli, erayzer_ckpt: Path, tmp_path: Path):
    out = tmp_path / "out"
    code, stdout, _ = cli(
        "infer", "--images", orbit_photos(tmp_path / "photos", SIZE, views=3), "--ckpt",
        erayzer_ckpt, "--out", out, "--refine", "3", "--path-frames", "0", "--spiral-frames",
        "0", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert code == 0, stdout
    report = json.loads((out / "summary.json").read_text())["refine"]
    lines = [line for line in stdout.splitlines() if line.startswith("refine: ")]
    assert lines == [refine_summary_line(report)]
    assert "reprojection PSNR" in lines[0] and "left-out view" in lines[0]
    assert "kept the " in lines[0]
