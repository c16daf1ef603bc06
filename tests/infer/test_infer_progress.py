"""``rayzer infer --fit`` / ``--refine`` progress: the callbacks count to the end, and the CLI
draws them as one bar each, with the stage and an ETA."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from _tiny import orbit_photos
from rayzer.infer.fit_predicted import FIT_HELD_OUT_STAGE, FIT_STAGE
from rayzer.infer.progress import StageBar
from rayzer.refine.report import HELD_OUT_STAGE, REFINE_STAGE
from rayzer.refine.splat import HELD_OUT_CAMERA_STEPS

SIZE = 32
STEPS = 3
#: the fit, then the leave-one-out check: the fit without the left-out view and two fits of the
#: left-out camera (before / after)
FIT_TOTAL = 2 * STEPS + 2 * HELD_OUT_CAMERA_STEPS


def test_the_fit_progress_reaches_its_total_stage_by_stage(erayzer_ckpt: Path, tmp_path: Path):
    from rayzer.infer.pipeline import run_inference

    seen: list[tuple[int, int, str]] = []
    run_inference(
        orbit_photos(tmp_path / "photos", SIZE), ckpt=erayzer_ckpt, out=tmp_path / "out",
        path_frames=2, spiral_frames=0, fit=STEPS,
        fit_progress=lambda done, total, stage: seen.append((done, total, stage)),
    )  # fmt: skip
    total = FIT_TOTAL
    assert {t for _, t, _ in seen} == {total}
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == total
    stages = [s for _, _, s in seen]
    first_held = stages.index(FIT_HELD_OUT_STAGE)
    assert set(stages[:first_held]) == {FIT_STAGE}
    assert set(stages[first_held:]) == {FIT_HELD_OUT_STAGE}
    assert max(d for d, _, s in seen if s == FIT_STAGE) == STEPS


def test_stage_bar_counts_to_the_total_with_stage_and_eta():
    out = io.StringIO()
    with StageBar("fit", file=out) as bar:
        for done in range(1, 5):
            bar(done, 8, "fitting the Gaussians")
        bar(4, 8, "fitting the Gaussians")  # a repeated count (the fit's final report)
        for done in range(5, 9):
            bar(done, 8, "leave-one-out check of the fit")
        closed = out.getvalue()
        assert closed.endswith("\n")  # closed at done == total: the next bar gets a new line
        bar(8, 8, "leave-one-out check of the fit")  # a repeated final report draws nothing
        assert out.getvalue() == closed
    text = out.getvalue()
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("fit: leave-one-out check of the fit") and "8/8" in last
    assert "fit: fitting the Gaussians" in text
    assert "<" in last  # tqdm's [elapsed<remaining]: the ETA


@pytest.mark.parametrize("refine", [0, 2])
def test_cli_draws_the_fit_and_refine_bars_on_a_terminal(
    cli, erayzer_ckpt: Path, tmp_path: Path, monkeypatch, refine: int
):
    photos = orbit_photos(tmp_path / "photos", SIZE)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = cli(
        "infer", "--images", photos, "--ckpt", erayzer_ckpt, "--out", tmp_path / "out",
        "--fit", str(STEPS), "--refine", str(refine), "--path-frames", "2",
        "--spiral-frames", "0", "--threads", "1",
    )  # fmt: skip
    assert code == 0, err
    lines = err.replace("\r", "\n").splitlines()

    def bar_ends(name: str, first: str, last: str, total: int) -> bool:
        mine = [x for x in lines if x.startswith(f"{name}: ") and "step" in x]
        return any(x.startswith(f"{name}: {first}") for x in mine) and any(
            x.startswith(f"{name}: {last}") and f"{total}/{total}" in x for x in mine
        )

    assert bar_ends("fit", FIT_STAGE, FIT_HELD_OUT_STAGE, FIT_TOTAL)
    # --refine: the cameras, then 3 refinements for the leave-one-out figure
    assert bar_ends("refine", REFINE_STAGE, HELD_OUT_STAGE, 4 * refine) == bool(refine)
