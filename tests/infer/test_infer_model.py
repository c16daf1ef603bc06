"""Loading models for inference: the bundled model (present or absent) and checkpoints, with
clear errors for checkpoints of another model, corrupt files and missing configs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from rayzer import bundled
from rayzer.infer.model import load_model, resolve_device
from rayzer.train.checkpoint import read_model_weights


def _copy(ckpt: Path, dest: Path) -> Path:
    shutil.copytree(ckpt, dest)
    return dest


def test_loads_checkpoint_dir_weights_file_and_run_dir(tiny_ckpt: Path) -> None:
    loaded = load_model(tiny_ckpt, device="cpu")
    assert loaded.image_size == 32 and loaded.patch_size == 8 and loaded.step == 7
    assert not loaded.bundled and not loaded.model.training
    weights, _ = read_model_weights(tiny_ckpt)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert load_model(tiny_ckpt / "model.safetensors", "cpu").checkpoint == tiny_ckpt
    assert load_model(tiny_ckpt.parent.parent, "cpu").checkpoint == tiny_ckpt  # run directory


def test_missing_bundled_model_says_pass_ckpt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        bundled, "bundled_model_dir", lambda name="default": tmp_path / "rayzer-default"
    )
    assert not bundled.has_bundled_model()
    with pytest.raises(
        bundled.BundledModelMissing, match=r"no bundled model in this install.*--ckpt"
    ):
        load_model(None, "cpu")


def test_installed_bundled_model_is_the_default(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch
) -> None:
    dest = bundled.install_bundled_model(tiny_ckpt, tmp_path / "assets" / "rayzer-default")
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.yaml",
        "meta.json",
        "model.safetensors",
    ]
    monkeypatch.setattr(bundled, "bundled_model_dir", lambda name="default": dest)
    loaded = load_model(device="cpu")
    assert loaded.bundled and loaded.checkpoint == dest
    reference = load_model(tiny_ckpt, "cpu").model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[key])


def test_installing_an_lvsm_checkpoint_is_refused(lvsm_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'lvsm' model"):
        bundled.install_bundled_model(lvsm_ckpt, tmp_path / "rayzer-default")
    assert not (tmp_path / "rayzer-default").exists()


def test_checkpoint_of_another_model_is_refused(lvsm_ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"holds a 'lvsm' model, which does not predict cameras"):
        load_model(lvsm_ckpt, "cpu")


def test_lvsm_weights_with_a_rayzer_config_are_refused(
    tiny_ckpt: Path, lvsm_ckpt: Path, tmp_path: Path
) -> None:
    ckpt = _copy(tiny_ckpt, tmp_path / "mixed")
    shutil.copy(lvsm_ckpt / "model.safetensors", ckpt / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"mixed.*holds a 'lvsm' model but this run builds 'rayzer'"
    ):
        load_model(ckpt, "cpu")


def test_corrupt_weights_name_the_file(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_ckpt, tmp_path / "corrupt")
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"corrupt/model\.safetensors' are corrupt or unreadable"):
        load_model(ckpt, "cpu")
    (ckpt / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="corrupt or unreadable"):
        load_model(ckpt, "cpu")


def test_missing_or_corrupt_config(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_ckpt, tmp_path / "noconfig")
    (ckpt / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"noconfig.*has no config\.yaml"):
        load_model(ckpt, "cpu")
    (ckpt / "config.yaml").write_bytes(b"model: [unclosed\n\x00\xff")
    with pytest.raises(ValueError, match=r"config\.yaml' is corrupt or invalid"):
        load_model(ckpt, "cpu")
    (ckpt / "config.yaml").write_text("model:\n  no_such_key: 1\n")
    with pytest.raises(ValueError, match=r"config\.yaml' is corrupt or invalid.*no_such_key"):
        load_model(ckpt, "cpu")


def test_architecture_mismatch(tiny_ckpt: Path, tmp_path: Path) -> None:
    ckpt = _copy(tiny_ckpt, tmp_path / "wider")
    text = (ckpt / "config.yaml").read_text().replace("dim: 32", "dim: 64")
    (ckpt / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match="does not match this model"):
        load_model(ckpt, "cpu")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing", "cpu")
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        load_model(tmp_path / "weights.pt", "cpu")


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_non_square_checkpoint_infers_at_its_short_side(tiny_ckpt: Path, tmp_path: Path) -> None:
    """A run trained at data.image_size=[H, W] loads with image_size = min(H, W), the default
    short side of rayzer infer / eval (was: the list itself, not a size)."""
    ckpt = _copy(tiny_ckpt, tmp_path / "ckpt")
    config = ckpt / "config.yaml"
    text = config.read_text()
    assert "image_size: 32\n" in text
    config.write_text(text.replace("image_size: 32\n", "image_size: [48, 32]\n"))
    loaded = load_model(ckpt, device="cpu")
    assert loaded.image_size == 32 and loaded.config.data.image_hw == (48, 32)
