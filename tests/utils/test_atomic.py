"""rayzer.utils.atomic: files and folders appear complete or not at all."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rayzer.utils.atomic import atomic_path, staged_dir, write_bytes_atomic, write_text_atomic


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_text_and_bytes_create_parents_and_replace(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    blob = tmp_path / "blob.bin"
    write_bytes_atomic(blob, bytes(range(256)))
    assert blob.read_bytes() == bytes(range(256))
    assert _siblings(target.parent) == ["out.txt"]  # no temporaries left behind
    assert stat.S_IMODE(blob.stat().st_mode) == 0o644  # not mkstemp's private 0o600


def test_atomic_path_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.")
        tmp.write_text("half-written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _siblings(tmp_path) == ["out.json"]
    # Failure with no previous file: nothing at all appears.
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt
    assert _siblings(tmp_path) == ["out.json"]


def test_staged_dir_success_moves_folder_into_place(tmp_path: Path) -> None:
    out = tmp_path / "parent" / "result"
    with staged_dir(out) as tmp:
        assert not tmp.exists() and not out.exists()
        assert tmp.parent == out.parent and tmp.name.startswith(".result.tmp-")
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "f.txt").write_text("hi")
    assert (out / "sub" / "f.txt").read_text() == "hi"
    assert _siblings(out.parent) == ["result"]
    # A block that writes nothing still produces an (empty) folder.
    with staged_dir(tmp_path / "empty"):
        pass
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_staged_dir_failure_leaves_nothing_and_keeps_old(tmp_path: Path) -> None:
    out = tmp_path / "result"
    with pytest.raises(ValueError, match="bad"), staged_dir(out) as tmp:
        tmp.mkdir()
        (tmp / "f.txt").write_text("partial")
        raise ValueError("bad")
    assert _siblings(tmp_path) == []
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), staged_dir(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert _siblings(tmp_path) == ["result"]
    assert _siblings(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "old"


def test_staged_dir_overwrite_semantics(tmp_path: Path) -> None:
    out = tmp_path / "result"
    out.mkdir()
    (out / "old.txt").write_text("old")
    already = r"result already exists \(pass overwrite=True"
    with pytest.raises(FileExistsError, match=already), staged_dir(out):
        pytest.fail("the block must not run when out exists")
    with (
        pytest.raises(FileExistsError, match=r"^custom .*result$"),
        staged_dir(out, exists_error="custom {out}"),
    ):
        pass
    assert _siblings(out) == ["old.txt"]
    with staged_dir(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert _siblings(out) == ["new.txt"]  # replaced, not merged
    assert _siblings(tmp_path) == ["result"]  # the moved-aside old folder is deleted


def test_staged_dir_refuses_out_that_appears_while_running(tmp_path: Path) -> None:
    out = tmp_path / "result"
    appeared = staged_dir(out, appeared_error="{out} appeared")
    with pytest.raises(FileExistsError, match="appeared"), appeared as tmp:
        tmp.mkdir()
        (tmp / "mine.txt").write_text("mine")
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")
    assert _siblings(out) == ["theirs.txt"]  # the concurrent writer's folder wins, untouched
    assert _siblings(tmp_path) == ["result"]
