"""Damaged checkpoints and bad input for ``rayzer bench reliability``.

Each case is a real ``rayzer`` subprocess with an expected outcome: ``error`` (exit 2, a
one-line message naming the problem and the file, no traceback, no partial output, inputs
untouched) or ``ok`` where success is the right answer (e.g. EXIF-rotated or mixed-size photos,
a damaged ``meta.json`` which no loader reads). Code-executing payloads (a pickle in place of
the training state, a YAML tag in ``config.yaml``) would create a marker file; a case fails if
the marker exists afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rayzer.bench.reliability_tools import (
    TINY_TRAIN,
    Check,
    judge_failure,
    judge_success,
    run_cli,
    synthetic_scene,
    tiny_checkpoint,
    write_photos,
)

INFER_FAST = ["--threads", "1", "--path-frames", "2", "--spiral-frames", "2", "--quiet"]
EVAL_FAST = ["--lpips", "none", "--threads", "1", "--quiet"]


@dataclass
class Case:
    """One CLI run and its expected outcome.

    Attributes:
        kind: what is wrong (or special) about the input; area: infer / eval / … .
        argv: the ``rayzer`` arguments. expect: ``"error"`` or ``"ok"``.
        names: strings the error message must contain (the file, the problem).
        absent: paths that must not exist afterwards (outputs of a failed run, markers).
        keep: files whose content must be unchanged (the user's input).
        outputs: paths that must exist after a success.
    """

    kind: str
    area: str
    argv: list[str]
    expect: str = "error"
    names: list[str] = field(default_factory=list)
    absent: list[Path] = field(default_factory=list)
    keep: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run_case(case: Case) -> dict[str, Any]:
    """Run one case; its record (``problem`` is None when the outcome was the right one)."""
    before = _digest(case.keep)
    run = run_cli(*case.argv, timeout=300)
    if case.expect == "ok":
        problem = judge_success(run, case.outputs)
    else:
        problem = judge_failure(run, case.names, [p for p in case.absent if "marker" not in p.name])
    markers = [str(p) for p in case.absent if "marker" in p.name and p.exists()]
    if markers:
        problem = f"payload executed: {markers} exist"
    if _digest(case.keep) != before:
        problem = "the input was changed"
    return {
        "kind": case.kind,
        "area": case.area,
        "expect": case.expect,
        "argv": " ".join(case.argv),
        "returncode": run.returncode,
        "message": run.message[:400],
        "seconds": round(run.seconds, 1),
        "problem": problem,
    }


def run_cases(cases: list[Case], jobs: int) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(run_case, cases))


# -- damaged checkpoints --------------------------------------------------------------------


class _Payload:
    """Unpickling this runs ``os.system(command)``: it must never be unpickled."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def _truncate_early(path: Path) -> None:
    """Cut the file to its first eighth (for config.yaml: inside the model section)."""
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 8)])


def _garbage(path: Path) -> None:
    size = max(64, path.stat().st_size)
    path.write_bytes(np.random.default_rng(size).integers(0, 256, size, np.uint8).tobytes())


def _nan_weights(path: Path) -> None:
    from safetensors.torch import save_file

    from rayzer.checkpoints import read_model_weights

    tensors, metadata = read_model_weights(path.parent)
    name = sorted(tensors)[len(tensors) // 2]
    tensors[name] = tensors[name].clone().fill_(math.nan)
    save_file(tensors, str(path), metadata=metadata)


def _raw_pickle(marker: Path) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_bytes(pickle.dumps({"step": 1, "x": _Payload(f"touch {marker}")}, protocol=2))

    return damage


def _torch_pickle(marker: Path) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        import torch

        torch.save({"step": 1, "optimizer": _Payload(f"touch {marker}")}, path)

    return damage


def _yaml_payload(marker: Path) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        text = path.read_text()
        path.write_text(f'evil: !!python/object/apply:os.system ["touch {marker}"]\n{text}')

    return damage


def corrupt_checks(folder: Path, jobs: int, quick: bool = False) -> list[Check]:
    """Every damaged checkpoint given to ``train --resume``, ``infer --ckpt`` and ``eval
    --ckpt``; markers of code-executing payloads must never appear."""
    from rayzer.checkpoints import CONFIG_FILE, META_FILE, MODEL_FILE, STATE_FILE

    base = _trained_checkpoint(folder / "base")
    photos = folder / "photos"
    write_photos(photos, 3)
    scene = synthetic_scene(folder / "scene")
    # expectations for train --resume / infer / eval: infer and eval need no training state,
    # and no loader reads meta.json (a human-readable summary)
    err3, state_only, none = ("error",) * 3, ("error", "ok", "ok"), ("ok",) * 3
    m = folder / "markers"
    m.mkdir(exist_ok=True)
    pickle_m, zip_m, yaml_m = m / "pickle.marker", m / "torchzip.marker", m / "yaml.marker"
    # (label, damaged file, damage, expectations, marker the payload would create)
    variants: list[tuple[str, str, Callable[[Path], None], tuple[str, ...], Path | None]] = [
        ("weights truncated", MODEL_FILE, _truncate, err3, None),
        ("weights garbage", MODEL_FILE, _garbage, err3, None),
        ("weights empty (0 B)", MODEL_FILE, lambda p: p.write_bytes(b""), err3, None),
        ("weights missing", MODEL_FILE, lambda p: p.unlink(), err3, None),
        ("weights NaN", MODEL_FILE, _nan_weights, err3, None),
        ("state truncated", STATE_FILE, _truncate, state_only, None),
        ("state garbage", STATE_FILE, _garbage, state_only, None),
        ("state = code-executing pickle", STATE_FILE, _raw_pickle(pickle_m), state_only,
         pickle_m),
        ("state = torch zip with a code-executing pickle", STATE_FILE, _torch_pickle(zip_m),
         state_only, zip_m),
        ("config truncated", CONFIG_FILE, _truncate_early, err3, None),
        ("config garbage", CONFIG_FILE, _garbage, err3, None),
        ("config = code-executing YAML tag", CONFIG_FILE, _yaml_payload(yaml_m), err3, yaml_m),
        ("meta truncated", META_FILE, _truncate, none, None),
        ("meta garbage", META_FILE, _garbage, none, None),
    ]  # fmt: skip
    if quick:
        variants = [variants[1], variants[7], variants[13]]
    cases: list[Case] = []
    for i, (label, name, damage, expect, marker) in enumerate(variants):
        work = folder / f"v{i:02d}"
        ckpt = work / "checkpoints" / base.name
        shutil.copytree(base, ckpt)
        damage(ckpt / name)
        for case in _checkpoint_cases(work, label, ckpt, name, expect, photos, scene):
            case.absent += [marker] if marker else []
            cases.append(case)
    cases += _foreign_model_cases(folder, photos, scene, quick)
    records = run_cases(cases, jobs)
    check = Check("damaged / foreign checkpoints (train --resume, infer, eval)")
    payload = Check(
        "code-executing pickle / YAML payload never runs (marker file absent)", subset=True
    )
    for record in records:
        check.add(record, record["problem"] is None)
        if "code-executing" in record["kind"]:
            payload.add(record, record["problem"] is None)
    executed = [str(p) for p in (pickle_m, zip_m, yaml_m) if p.exists()]
    check.detail = (
        f"{len(variants)} kinds of damage × 3 commands + another model's checkpoints: exit 2 "
        "naming the file, or success where the file is not needed (state for infer / eval, "
        "meta.json)"
    )
    payload.detail = (
        f"the payload runs of the row above (not counted again in the total); marker files "
        f"created: {len(executed)} (weights-only / safe loaders)"
    )
    payload.figures = {"markers_created": executed}
    return [check, payload]


def _trained_checkpoint(out: Path) -> Path:
    """The checkpoint of a 1-step ``rayzer train`` (weights, optimizer state, config, meta)."""
    from rayzer.checkpoints import list_checkpoints

    run = run_cli("train", "--config", "tiny-cpu", *TINY_TRAIN, "train.steps=1",
                  "train.ckpt_every=1", "--out", out)  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"training the corrupt-check base run failed: {run.stderr[-2000:]}")
    return list_checkpoints(out)[-1]


def _checkpoint_cases(
    work: Path, label: str, ckpt: Path, name: str, expect: tuple[str, ...], photos: Path,
    scene: Path,
) -> list[Case]:  # fmt: skip
    # the file, or the checkpoint folder where the file is missing / its config is cut short
    file = str(ckpt) if "missing" in label or "config truncated" in label else str(ckpt / name)
    train = Case(f"{label}", "train --resume",
                 ["train", "--resume", str(ckpt), "--out", str(work / "train"),
                  "train.steps=2", "train.num_threads=1"], expect[0], [file],
                 [work / "train"], outputs=[work / "train" / "checkpoints"])  # fmt: skip
    infer = Case(f"{label}", "infer --ckpt",
                 ["infer", "--ckpt", str(ckpt), "--images", str(photos),
                  "--out", str(work / "infer"), *INFER_FAST], expect[1], [file],
                 [work / "infer"], keep=[photos], outputs=[work / "infer" / "cameras.json"])  # fmt: skip
    evaluate = Case(f"{label}", "eval --ckpt",
                    ["eval", "--ckpt", str(ckpt), "--data", str(scene),
                     "--out", str(work / "eval"), *EVAL_FAST], expect[2], [file],
                    [work / "eval"], keep=[scene], outputs=[work / "eval" / "metrics.json"])  # fmt: skip
    return [train, infer, evaluate]


def _foreign_model_cases(folder: Path, photos: Path, scene: Path, quick: bool) -> list[Case]:
    """Another model's checkpoint where a RayZer is needed, and weights of another size."""
    lvsm = tiny_checkpoint(folder / "lvsm", "model.name=lvsm")
    big = tiny_checkpoint(folder / "big", "model.dim=64")
    mixed = folder / "mixed" / "checkpoints" / "step_000001"
    shutil.copytree(tiny_checkpoint(folder / "small"), mixed)
    shutil.copy(big / "model.safetensors", mixed / "model.safetensors")  # config says dim 32
    w = folder / "foreign"
    cases = [
        Case("LVSM checkpoint (predicts no cameras)", "infer --ckpt",
             ["infer", "--ckpt", str(lvsm), "--images", str(photos), "--out", str(w / "i1"),
              *INFER_FAST], names=["lvsm"], absent=[w / "i1"]),
        Case("LVSM checkpoint resumed into a RayZer run", "train --resume",
             ["train", "--config", "tiny-cpu", "--resume", str(lvsm), "--out", str(w / "t1"),
              "train.steps=2"], names=["lvsm", "rayzer"], absent=[w / "t1"]),
        Case("weights of another size than its config", "infer --ckpt",
             ["infer", "--ckpt", str(mixed), "--images", str(photos), "--out", str(w / "i2"),
              *INFER_FAST], names=[str(mixed), "shape"], absent=[w / "i2"]),
        Case("weights of another size than its config", "train --resume",
             ["train", "--resume", str(mixed), "--out", str(w / "t2"), "train.steps=2"],
             names=[str(mixed), "shape"], absent=[w / "t2"]),
        Case("weights of another size than its config", "eval --ckpt",
             ["eval", "--ckpt", str(mixed), "--data", str(scene), "--out", str(w / "e2"),
              *EVAL_FAST], names=[str(mixed), "shape"], absent=[w / "e2"]),
    ]  # fmt: skip
    return cases[:2] if quick else cases


# -- bad input --------------------------------------------------------------------------------


def _image_folder(folder: Path, bad: Callable[[Path], Path] | None = None, good: int = 2) -> Path:
    """``good`` ordinary photos, plus the file ``bad(folder)`` makes."""
    write_photos(folder, good)
    if bad is not None:
        bad(folder)
    return folder


def _save(name: str, make: Callable[[], Any], **kwargs: Any) -> Callable[[Path], Path]:
    """A ``bad`` writer saving the Pillow image ``make()`` as ``name``."""

    def write(folder: Path) -> Path:
        path = folder / name
        make().save(path, **kwargs)
        return path

    return write


def _bytes(name: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data(folder) if callable(data) else data)
        return path

    return write


def _photo(size: tuple[int, int], mode: str = "RGB"):
    from PIL import Image

    rng = np.random.default_rng(size[0] * size[1])
    coarse = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    return Image.fromarray(coarse).resize(size, Image.BILINEAR).convert(mode)


def _exif_rotated(folder: Path) -> Path:
    """Photos stored sideways with EXIF orientation 6 and 8 (phones do this)."""
    from PIL import Image

    for k, orientation in enumerate((6, 8)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        _photo((32, 48)).save(folder / f"rot{k}.jpg", exif=exif)
    return folder / "rot0.jpg"


def _gif(folder: Path) -> Path:
    frames = [_photo((40, 32)).convert("P") for _ in range(3)]
    path = folder / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def _png16(folder: Path) -> Path:
    from PIL import Image

    ramp = np.linspace(0, 65535, 40 * 32).reshape(32, 40).astype(np.uint16)
    path = folder / "deep.png"
    Image.fromarray(ramp).save(path)  # mode I;16: a 16-bit greyscale PNG
    return path


def _mixed(folder: Path) -> Path:
    for k, size in enumerate([(64, 48), (48, 64), (100, 30)]):
        _photo(size).save(folder / f"mixed{k}.jpg")
    return folder / "mixed0.jpg"


def _video(path: Path, frames: int) -> Path:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path), (32, 32), fps=10, codec="libx264", ffmpeg_log_level="quiet"
    )
    writer.send(None)
    for k in range(frames):
        writer.send(np.full((32, 32, 3), 20 * k, np.uint8))
    writer.close()
    return path


def _audio_only(path: Path) -> Path:
    """An .mp4 with one AAC audio stream and no video stream."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "quiet", "-y", "-f", "lavfi", "-i",
         "anullsrc=r=8000:cl=mono", "-t", "1", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _edit_scene(scene: Path, dst: Path, edit: Callable[[dict], Any]) -> Path:
    """A copy of ``scene`` whose cameras.json went through ``edit`` (which may replace it by
    returning text)."""
    shutil.copytree(scene, dst)
    data = json.loads((dst / "cameras.json").read_text())
    result = edit(data)
    text = result if isinstance(result, str) else json.dumps(data)
    (dst / "cameras.json").write_text(text)
    return dst


def _set_frame(key: str, value: Any, frame: int = 1) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["frames"][frame][key] = value

    return edit


def _scale_rotation(data: dict) -> None:
    c2w = np.array(data["frames"][1]["c2w"])
    c2w[:3, :3] *= 2.0
    data["frames"][1]["c2w"] = c2w.tolist()


def _nan_c2w(data: dict) -> None:
    data["frames"][1]["c2w"][0][0] = math.nan


def _drop(key: str) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        del data["frames"][1][key]

    return edit


def _a_file(folder: Path, name: str) -> Path:
    """A user's file (``files/<name>.txt``) named as an output folder."""
    path = folder / "files" / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("I am a file, not a folder\n")
    return path


def _files(folder: Path) -> list[Path]:
    return sorted((folder / "files").glob("*.txt"))


def bad_input_checks(folder: Path, jobs: int, quick: bool = False) -> list[Check]:
    """≥ 30 kinds of bad (and awkward but valid) input to the real CLI, by command."""
    from PIL import Image

    ckpt = tiny_checkpoint(folder / "run")
    scene = synthetic_scene(folder / "scene")
    good = _image_folder(folder / "parent" / "good")
    out = folder / "out"
    out.mkdir(exist_ok=True)
    secret = folder / "secret.png"
    _photo((16, 16)).save(secret)
    cases: list[Case] = []

    def infer(kind: str, images: Path, expect: str = "error", names: list[str] | None = None,
              extra: list[str] | None = None, video: bool = False) -> None:  # fmt: skip
        dst = out / f"infer{len(cases):02d}"
        source = ["--video" if video else "--images", str(images)]
        cases.append(Case(
            kind, "infer", ["infer", "--ckpt", str(ckpt), *source, "--out", str(dst),
                            *INFER_FAST, *(extra or [])],
            expect, names or [], [dst] if expect == "error" else [], keep=[images],
            outputs=[dst / "cameras.json"],
        ))  # fmt: skip

    def images(name: str, bad: Callable[[Path], Path] | None, good_count: int = 2) -> Path:
        return _image_folder(folder / "images" / name, bad, good_count)

    # images
    infer("image of zero bytes", images("zero", _bytes("empty.jpg", b"")), names=["empty.jpg"])
    infer("truncated JPEG", images("trunc", _bytes(
        "cut.jpg", lambda f: (f / "img0.jpg").read_bytes()[:200])), names=["cut.jpg"])  # fmt: skip
    infer("text file named .jpg", images("text", _bytes("notes.jpg", b"hello\n" * 20)),
          names=["notes.jpg"])  # fmt: skip
    infer("1x1 image", images("tiny", _save("dot.png", lambda: Image.new("RGB", (1, 1)))),
          names=["dot.png"])  # fmt: skip
    infer("20000x100 image", images("wide", _save("strip.png", lambda: _photo((20000, 100)))),
          names=["strip.png"])  # fmt: skip
    infer("16-bit PNG", images("deep", _png16), "ok")
    infer("CMYK JPEG", images("cmyk", _save("cmyk.jpg", lambda: _photo((40, 32), "CMYK"))), "ok")
    infer("animated GIF", images("gif", _gif), "ok")
    infer("EXIF rotations (orientation 6 and 8)", images("exif", _exif_rotated), "ok")
    infer("mixed sizes and aspect ratios", images("mixed", _mixed, 0), "ok")
    infer("empty folder", images("none", None, 0), names=["none", "no image files"])
    infer("one image", images("one", None, 1), names=["1"])
    infer("missing folder", folder / "no_such_folder", names=["no_such_folder"])
    # videos
    infer("video of zero frames", _video(folder / "zero_frames.mp4", 0), video=True,
          names=["zero_frames.mp4"])  # fmt: skip
    infer("video without a video stream (audio only)", _audio_only(folder / "audio.mp4"),
          video=True, names=["audio.mp4"])  # fmt: skip
    infer("garbage named .mp4", _bytes("garbage.mp4", b"\x00\x01" * 500)(folder), video=True,
          names=["garbage.mp4"])  # fmt: skip
    # options and paths
    infer("--size negative", good, names=["--size"], extra=["--size", "-16"])
    infer("--size far too large", good, names=["--size"], extra=["--size", "100000"])
    infer("--max-views 1", good, names=["--max-views"], extra=["--max-views", "1"])
    for kind, dst, names in (
        ("--out is the input folder", good, [str(good)]),
        ("--out inside the input folder", good / "outputs", [str(good)]),
        ("--out is the input's parent", good.parent, [str(good.parent)]),
        ("--out is an existing file", _a_file(folder, "infer"), ["file, not a folder"]),
    ):
        cases.append(Case(kind, "infer", ["infer", "--ckpt", str(ckpt), "--images", str(good),
                                          "--out", str(dst), "--overwrite", *INFER_FAST],
                          names=names, keep=[good.parent, *_files(folder)]))  # fmt: skip

    # scene files (eval)
    def evaluate(kind: str, data: Path, names: list[str], extra: list[str] | None = None,
                 dst: Path | None = None) -> None:  # fmt: skip
        dst = dst or out / f"eval{len(cases):02d}"
        cases.append(Case(kind, "eval", ["eval", "--ckpt", str(ckpt), "--data", str(data),
                                         "--out", str(dst), *EVAL_FAST, *(extra or [])],
                          names=names, absent=[dst] if dst != data else [],
                          keep=[data] if data.exists() else []))  # fmt: skip

    scenes = folder / "scenes"
    evaluate("cameras.json malformed JSON", _edit_scene(scene, scenes / "json",
             lambda d: '{"frames": [ {"file": '), ["cameras.json"])  # fmt: skip
    evaluate("c2w with NaN", _edit_scene(scene, scenes / "nan", _nan_c2w), ["cameras.json"])
    evaluate("c2w not a rotation (scaled 2x)", _edit_scene(scene, scenes / "scaled",
             _scale_rotation), ["cameras.json"])  # fmt: skip
    evaluate("negative focal length", _edit_scene(scene, scenes / "focal",
             _set_frame("fx", -14.0)), ["cameras.json"])  # fmt: skip
    evaluate("frame without fx", _edit_scene(scene, scenes / "nokey", _drop("fx")),
             ["cameras.json", "fx"])  # fmt: skip
    evaluate("frame file outside the scene folder", _edit_scene(scene, scenes / "escape",
             _set_frame("file", "../../secret.png")), ["secret.png"])  # fmt: skip
    missing = _edit_scene(scene, scenes / "missing", lambda d: None)
    (missing / "images" / "001.png").unlink()
    evaluate("frame file missing", missing, ["001.png"])
    zero = _edit_scene(scene, scenes / "zero_image", lambda d: None)
    (zero / "images" / "002.png").write_bytes(b"")
    evaluate("scene image of zero bytes", zero, ["002.png"])
    evaluate("--data missing", folder / "no_such_scene", ["no_such_scene"])
    evaluate("--out is the dataset", scene, [str(scene)], ["--overwrite"], dst=scene)
    evaluate("--context 0", scene, ["--context"], ["--context", "0"])

    # data convert
    def convert(kind: str, src: Path, dst: Path, names: list[str], extra: list[str] | None = None,
                keep: list[Path] | None = None) -> None:  # fmt: skip
        cases.append(Case(kind, "data convert", ["data", "convert", "--input", str(src),
                                                 "--output", str(dst), *(extra or [])],
                          names=names, absent=[] if dst.exists() else [dst],
                          keep=keep if keep is not None else ([src] if src.exists() else [])))  # fmt: skip

    ns = folder / "nerfstudio"
    ns.mkdir()
    (ns / "transforms.json").write_text('{"frames": [{"file_path": ')
    convert("transforms.json malformed JSON", ns, out / "c1", ["transforms.json"])
    convert("--input missing", folder / "no_such_input", out / "c2", ["no_such_input"])
    convert("--output inside --input", scene, scene / "converted", [str(scene)])
    a_file = _a_file(folder, "convert")
    convert("--output is an existing file", scene, a_file, [str(a_file), "not a folder"],
            ["--overwrite"], [scene, a_file])  # fmt: skip
    convert("video of zero frames", folder / "zero_frames.mp4", out / "c3", ["zero_frames.mp4"])
    convert("image folder with a truncated JPEG", images("trunc_convert", _bytes(
        "cut.jpg", lambda f: (f / "img0.jpg").read_bytes()[:200])), out / "c4", ["cut.jpg"])  # fmt: skip

    # configs (train)
    def train(kind: str, args: list[str], names: list[str]) -> None:
        dst = out / f"train{len(cases):02d}"
        cases.append(Case(kind, "train", ["train", *args, "--out", str(dst)], names=names,
                          absent=[dst]))  # fmt: skip

    base = ["--config", "tiny-cpu", "train.num_threads=1", "train.steps=1"]
    train("unknown config key", [*base, "train.no_such_key=1"], ["no_such_key"])
    train("wrong type (train.steps=abc)", [*base, "train.steps=abc"], ["train.steps"])
    train("negative size (data.image_size=-16)", [*base, "data.image_size=-16"], ["image_size"])
    train("zero batch (train.batch_size=0)", [*base, "train.batch_size=0"], ["batch_size"])
    configs = folder / "configs"
    configs.mkdir()
    yaml_files = {
        "broken.yaml": ("--config malformed YAML", "train: {steps: [1,\n", ["broken.yaml"]),
        "list.yaml": ("--config a YAML list", "- a\n- b\n", ["list.yaml"]),
        "unknown.yaml": ("--config with an unknown key", "train:\n  stepz: 3\n",
                         ["unknown.yaml", "stepz"]),
        "types.yaml": ("--config with a wrong type", "model:\n  dim: [32]\n",
                       ["types.yaml", "dim"]),
    }  # fmt: skip
    for name, (kind, text, names) in yaml_files.items():
        (configs / name).write_text(text)
        train(kind, ["--config", str(configs / name)], names)
    train("--config file missing", ["--config", str(configs / "none.yaml")], ["none.yaml"])
    a_file = _a_file(folder, "train")
    cases.append(Case("--out is an existing file", "train",
                      ["train", *base, "--out", str(a_file)], names=[str(a_file)],
                      keep=[a_file]))  # fmt: skip

    # serve (start-up arguments; requests are the serve section)
    for kind, args, names in (
        ("--ckpt missing", ["--ckpt", str(folder / "no_ckpt")], ["no_ckpt"]),
        ("--max-upload-mb negative", ["--ckpt", str(ckpt), "--max-upload-mb", "-1"],
         ["--max-upload-mb"]),
        ("--port out of range", ["--ckpt", str(ckpt), "--port", "99999"], ["99999"]),
    ):  # fmt: skip
        cases.append(Case(kind, "serve", ["serve", *args], names=names))

    if quick:
        cases = [c for i, c in enumerate(cases) if i % 12 == 0]
    records = run_cases(cases, jobs)
    checks = []
    for area in dict.fromkeys(c.area for c in cases):
        check = Check(f"bad input: {area}")
        for record in records:
            if record["area"] == area:
                check.add(record, record["problem"] is None)
        ok = [r["kind"] for r in check.cases if r["expect"] == "ok"]
        check.detail = f"{check.trials} kinds" + (
            f"; success is right for: {', '.join(ok)}" if ok else ""
        )
        checks.append(check)
    return checks
