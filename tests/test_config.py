from pathlib import Path

import pytest

import rayzer
from rayzer.config import config_to_yaml, list_presets, load_config
from rayzer.models import RayZer


def test_presets_load_and_build():
    assert {"tiny-cpu", "re10k", "dl3dv", "objaverse"} <= set(list_presets())
    for name in list_presets():
        cfg = load_config(name)
        assert cfg.data.image_size % cfg.model.patch_size == 0
    paper = load_config("dl3dv")
    m = paper.model
    assert (m.dim, m.scene.num_tokens, paper.data.num_views) == (768, 3072, 24)
    assert m.camera.layers == m.scene.layers == m.decoder.layers == 8
    # paper-scale presets widen the frame span over training, beyond the synthetic 24 frames
    spans = {n: load_config(n).data for n in ("re10k", "dl3dv", "objaverse")}
    assert {n: d.span_range()[2] for n, d in spans.items()} == {
        "re10k": 192,
        "dl3dv": 96,
        "objaverse": 32,
    }
    assert all(d.curriculum_steps > 0 and d.span_range()[0] >= d.num_views for d in spans.values())


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config("tiny-cpu", ["model.dim=64", "train.lr=0.01", "data.family=walk"])
    assert (cfg.model.dim, cfg.train.lr, cfg.data.family) == (64, 0.01, "walk")
    path = tmp_path / "cfg.yaml"
    path.write_text(config_to_yaml(cfg))
    assert load_config(path) == cfg
    RayZer(cfg.model)  # builds


def test_bad_configs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no_such_key"):
        load_config("tiny-cpu", ["model.no_such_key=1"])
    with pytest.raises(ValueError, match="dim"):
        load_config("tiny-cpu", ["model.dim=abc"])
    with pytest.raises(ValueError, match="key=value"):
        load_config("tiny-cpu", ["model.dim"])
    with pytest.raises(FileNotFoundError, match="nope"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  layers: 3\n")
    with pytest.raises(ValueError, match="layers"):
        load_config(bad)


def test_removed_translation_warmup_loads_only_when_off():
    assert load_config("tiny-cpu", ["train.translation_warmup=[0,0]"]) == load_config("tiny-cpu")
    with pytest.raises(ValueError, match="translation warm-up was removed"):
        load_config("tiny-cpu", ["train.translation_warmup=[2,4]"])


def test_config_error_names_the_override_omegaconf_rejects():
    """Our own validation error of one override must not be blamed for OmegaConf's of another."""
    with pytest.raises(ValueError, match=r"at train\.betas \(override 'train\.betas=\[1,2,3\]'"):
        load_config("tiny-cpu", ["train.lr=-1", "train.betas=[1,2,3]"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.low_res_size=32"], "both > 0"),
        (["data.low_res_steps=10"], "both > 0"),
        (["data.low_res_size=64", "data.low_res_steps=10"], r"low_res_size must be in \[8"),
        (["data.low_res_size=-8", "data.low_res_steps=10"], "both > 0"),
        (["data.low_res_size=36", "data.low_res_steps=10"], "not divisible by model.patch_size"),
        (["data.image_size=60"], "data.image_size=60 is not divisible"),
    ],
)
def test_progressive_resolution_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny-cpu", overrides)
    cfg = load_config("tiny-cpu", ["data.low_res_size=32", "data.low_res_steps=10"]).data
    assert [cfg.image_size_at(s) for s in (0, 9, 10, 99)] == [32, 32, 64, 64]


def test_old_flat_checkpoint_config_migrates():
    """The bundled model's config.yaml is in the old flat layout (every switch of the time,
    train.translation_warmup and train.sense_weight): it loads as the `bundled` preset does,
    and its weights load into the model it builds without renaming any key."""
    from rayzer.bundled import bundled_checkpoint
    from rayzer.checkpoints import load_trained_model, read_model_weights
    from rayzer.model_config import RayZerConfig

    ckpt = bundled_checkpoint()
    text = (ckpt / "config.yaml").read_text()
    assert "cam_layers: 3" in text and "translation_warmup" in text  # the old layout
    old = load_config(ckpt / "config.yaml")
    assert isinstance(old.model, RayZerConfig)
    assert old.model == load_config("bundled").model
    assert (old.model.camera.layers, old.model.scene.num_tokens) == (3, 16)
    assert (old.model.decoder.readout, old.model.sense.mirror) == ("sweep", "resolved")
    trained = load_trained_model(ckpt)
    tensors, _ = read_model_weights(ckpt)
    assert set(trained.model.state_dict()) == set(tensors)


def test_old_flat_lvsm_section_drops_what_lvsm_ignored(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        "model:\n  name: lvsm\n  dim: 64\n  cam_layers: 2\n  dec_layers: 2\n  sense_head: true\n"
        "  pos_enc_dim: 32\n  learn_focal: true\n  epipolar_bias: false\n"
        "train:\n  sense_weight: 1.0\n  translation_warmup: [0, 0]\n"
    )
    cfg = load_config(path)
    assert cfg.model.name == "lvsm" and cfg.model.dim == 64 and cfg.model.decoder.layers == 2
    assert not hasattr(cfg.model, "camera") and not hasattr(cfg.model, "sense")


def test_flat_overrides_win_over_nested_preset_values():
    cfg = load_config("tiny-cpu", ["model.num_scene_tokens=8", "model.cam_layers=1"])
    assert (cfg.model.scene.num_tokens, cfg.model.camera.layers) == (8, 1)
    assert cfg.model.scene.keep_input_tokens  # the rest of the preset's part stays
    lvsm = load_config("lvsm-tiny-cpu")
    assert lvsm.model.name == "lvsm" and lvsm.data == load_config("tiny-cpu").data


BROKEN_YAML = {
    "syntax": ("model: [1, 2\n  dim: {\n", "line 2, column"),
    "list-shaped": ("- model\n- data\n", "not a mapping of sections"),
    "list section": ("model:\n  - 1\n", "section 'model' must be a mapping"),
    "list model name": ("model:\n  name: [rayzer]\n", "model.name must be one of"),
    "binary": (b"\x00\x01\xff\xfe garbage", "can't decode"),
    "python tag": ("model: !!python/object/apply:os.system [echo]\n", "constructor"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_YAML))
def test_broken_yaml_files_name_the_file_and_problem(tmp_path, case):
    """Damaged or wrongly shaped YAML once escaped as a yaml / TypeError / AttributeError
    traceback; now one ValueError that names the file."""
    text, problem = BROKEN_YAML[case]
    path = tmp_path / "cfg.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError, match=r"cfg\.yaml") as info:
        load_config(path)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("size", [-16, 0, 4])
def test_image_size_below_8_names_the_key(size):
    """data.image_size=-16 failed deep inside the synthetic clip renderer with "height/width
    must be >= 8", naming neither the key nor the config."""
    with pytest.raises(ValueError, match=rf"data.image_size must be >= 8, got {size}"):
        load_config("tiny-cpu", [f"data.image_size={size}"])


@pytest.mark.parametrize("preset", ["erayzer-tiny-cpu", "nas3r-tiny-cpu"])
def test_an_epipolar_weight_without_matches_is_refused_with_the_config(preset):
    """The epipolar term needs the stream's matches: without them the config is refused when
    it is built (naming both keys), not at the first loss of a training that already started."""
    with pytest.raises(ValueError) as err:
        load_config(preset, ["model.epipolar_loss_weight=1.0"])
    message = str(err.value)
    assert "model.epipolar_loss_weight=1.0" in message and "data.epipolar_matches" in message
    cfg = load_config(preset, ["model.epipolar_loss_weight=1.0", "data.epipolar_matches=16"])
    assert cfg.model.epipolar_loss_weight == 1.0 and cfg.data.epipolar_matches == 16
    assert load_config(preset).model.epipolar_loss_weight == 0.0  # off: no matches needed


# ------------------------------------------------------------------------------------------------
# data.image_size: an int (square) or [height, width] (issue 18 item 3)


def test_image_size_takes_height_and_width(tmp_path):
    cfg = load_config("tiny-cpu", ["data.image_size=[24,40]"])
    assert cfg.data.image_size == [24, 40] and cfg.data.image_hw == (24, 40)
    assert cfg.data.short_side == 24
    path = tmp_path / "cfg.yaml"  # a run's config.yaml reloads as it was
    path.write_text(config_to_yaml(cfg))
    assert load_config(path) == cfg
    path.write_text("data:\n  image_size: [48, 32]\n")  # a preset file, portrait
    assert load_config(path).data.image_hw == (48, 32)


def test_square_image_size_stays_an_int():
    """Square configs and checkpoints are unchanged: an int stays an int (config.yaml files are
    written as before) and the bundled checkpoint's config loads as it did."""
    cfg = load_config("tiny-cpu")
    assert cfg.data.image_size == 64 and type(cfg.data.image_size) is int
    assert cfg.data.image_hw == (64, 64) and cfg.data.short_side == 64
    assert "image_size: 64\n" in config_to_yaml(cfg)
    bundled = load_config(
        Path(rayzer.__file__).parent / "assets" / "rayzer-default" / "config.yaml"
    )
    assert type(bundled.data.image_size) is int and bundled.data.image_hw == (64, 64)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[24,36]", r"data.image_size=\[24, 36\] is not divisible by model.patch_size=8"),
        ("[36,24]", r"data.image_size=\[36, 24\] is not divisible by model.patch_size=8"),
        ("[24]", r"data.image_size must be an int \(a square side\) or \[height, width\]"),
        ("[24,40,8]", r"data.image_size must be an int .* got \[24, 40, 8\]"),
        ("[24.5,40]", r"data.image_size must be an int .* got \[24.5, 40\]"),
        ("abc", r"data.image_size must be an int .* got 'abc'"),
        ("true", r"data.image_size must be an int .* got True"),
        ("[0,40]", r"data.image_size sides must be >= 8, got \[0, 40\]"),
        ("[-8,40]", r"data.image_size sides must be >= 8, got \[-8, 40\]"),
    ],
)
def test_bad_image_sizes_name_the_key_and_the_value(value, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny-cpu", [f"data.image_size={value}"])


def test_low_res_size_is_checked_against_the_short_side():
    with pytest.raises(ValueError, match=r"low_res_size must be in \[8, short side of"):
        load_config(
            "tiny-cpu", ["data.image_size=[32,64]", "data.low_res_size=32", "data.low_res_steps=2"]
        )
    cfg = load_config(
        "tiny-cpu", ["data.image_size=[32,64]", "data.low_res_size=16", "data.low_res_steps=2"]
    )
    assert cfg.data.image_hw_at(0, 8) == (16, 32) and cfg.data.image_hw_at(2, 8) == (32, 64)
