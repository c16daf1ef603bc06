import pytest

from rayzer.config import config_to_yaml, list_presets, load_config
from rayzer.models import RayZer


def test_presets_load_and_build():
    assert {"tiny-cpu", "re10k", "dl3dv", "objaverse"} <= set(list_presets())
    for name in list_presets():
        cfg = load_config(name)
        assert cfg.data.image_size % cfg.model.patch_size == 0
    paper = load_config("dl3dv")
    assert (paper.model.dim, paper.model.num_scene_tokens, paper.data.num_views) == (768, 3072, 24)
    assert paper.model.cam_layers == paper.model.scene_layers == paper.model.dec_layers == 8
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


@pytest.mark.parametrize("bad", ["[5,2]", "[-1,3]", "[1,2,3]"])
def test_translation_warmup_must_be_an_ordered_pair(bad):
    with pytest.raises(ValueError, match="translation_warmup"):
        load_config("tiny-cpu", [f"train.translation_warmup={bad}"])


def test_config_error_names_the_override_omegaconf_rejects():
    """Our own validation error of one override must not be blamed for OmegaConf's of another."""
    with pytest.raises(ValueError, match=r"at train\.translation_warmup \(override"):
        load_config("tiny-cpu", ["train.betas=[0.9,2]", "train.translation_warmup=[1,2,3]"])


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
