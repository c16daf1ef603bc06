"""``experiments/issue18_explicit/probe_teacher_spikes.py`` patches the pose-only probe's camera
function and trains in a temporary run folder; however its run ends, it leaves neither behind
(the probe module is shared with whoever imported it) and closes its trainer's logs."""

from __future__ import annotations

import tempfile

import pytest

from _scripts import ROOT, load_script

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def spikes():
    with pytest.MonkeyPatch.context() as mp:  # it imports its sibling probe_pose_only.py
        mp.syspath_prepend(str(ROOT / "experiments/issue18_explicit"))
        yield load_script("experiments/issue18_explicit/probe_teacher_spikes.py")


def test_a_run_that_fails_undoes_its_patch_closes_its_trainer_and_removes_its_folder(
    spikes, tmp_path, monkeypatch
):
    closed = []

    class Failing:
        """A trainer that builds, then fails when the run first reads its data stream."""

        def __init__(self, cfg, run_dir):
            self.run_dir = run_dir

        @property
        def stream(self):
            raise RuntimeError("no stream")

        def close(self):
            closed.append(self.run_dir)

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(spikes, "Inst", Failing)
    monkeypatch.setattr(spikes, "TRUTH", str(tmp_path / "truth.pt"))  # not read: no stream
    plain = spikes.P.pose_only_cameras
    with pytest.raises(RuntimeError, match="no stream"):
        spikes.run(1, tmp_path / "out.json")
    assert spikes.P.pose_only_cameras is plain
    assert not list(tmp_path.glob("k_spike_*"))  # the trainer's run folder is removed
    assert len(closed) == 1 and closed[0].name.startswith("k_spike_")
