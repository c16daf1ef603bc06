import subprocess
import sys


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "rayzer.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_data_synth_writes_a_scene_and_refuses_to_overwrite(tmp_path):
    args = ("data", "synth", "--seed", "1000001", "--frames", "3", "--size", "16", "--out", "s")
    first = run(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "s" / "cameras.json").is_file()
    again = run(*args, cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    assert run(*args, "--overwrite", cwd=tmp_path).returncode == 0


def test_unknown_config_key_is_a_clear_error(tmp_path):
    res = run("train", "--config", "tiny-cpu", "model.bogus=1", cwd=tmp_path)
    assert res.returncode == 2 and "bogus" in res.stderr and "Traceback" not in res.stderr
