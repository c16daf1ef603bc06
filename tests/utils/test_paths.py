"""rayzer.utils.paths: outputs never overlap inputs; names from data files stay in their folder;
--overwrite never replaces a root, the home folder or the working folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rayzer.utils.atomic import staged_dir
from rayzer.utils.paths import check_output_apart, check_replaceable, path_inside


@pytest.mark.parametrize(
    ("out", "relation"),
    [("data", "is"), (".", "contains"), ("data/sub/out", "lies inside")],
)
def test_output_overlapping_an_input_is_refused(tmp_path: Path, out: str, relation: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ValueError, match=f"output folder .* {relation} the input --data") as info:
        check_output_apart(tmp_path / out, {"--data": data, "--ckpt": None})
    assert str(data) in str(info.value)


def test_output_apart_from_inputs_passes(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    # A sibling whose name merely starts like the input is not inside it.
    check_output_apart(tmp_path / "data2", {"--data": tmp_path / "data", "--ckpt": None})
    check_output_apart(tmp_path / "out", {"--data": tmp_path / "data"})


def test_overlap_through_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    with pytest.raises(ValueError, match="is the input"):
        check_output_apart(tmp_path / "link", {"--images": tmp_path / "data"})


@pytest.mark.parametrize("name", ["../x.png", "images/../../x.png", "/etc/hostname", ".."])
def test_names_leaving_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="points outside the folder"):
        path_inside(tmp_path, name)


def test_names_inside_the_folder_pass(tmp_path: Path) -> None:
    assert path_inside(tmp_path, "images/a.png") == tmp_path / "images" / "a.png"
    assert path_inside(tmp_path, "images/../b.png") == tmp_path / "images" / ".." / "b.png"


def test_roots_home_and_working_folder_are_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for folder, reason in (
        (Path(os.sep), "file-system root"),
        (tmp_path / "home", "home folder"),
        (work, "contains the current folder"),
        (tmp_path, "contains the current folder"),
    ):
        with pytest.raises(ValueError, match=reason):
            check_replaceable(folder)
    check_replaceable(work / "out")  # an ordinary output folder


def test_staged_dir_overwrite_refuses_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keep.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(ValueError, match="contains the current folder"),
        staged_dir(Path("."), overwrite=True) as tmp,
    ):
        tmp.mkdir()
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_an_existing_file_is_never_replaced_by_an_output_folder(tmp_path: Path) -> None:
    """`--out notes.txt --overwrite` once deleted the user's file (moved it to a hidden
    .notes.txt.old-* that was never cleaned up) and wrote the output folder in its place."""
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    with pytest.raises(ValueError, match=rf"{notes}: it is a file, not a folder"):
        check_replaceable(notes)
    with pytest.raises(ValueError, match="not a folder"), staged_dir(notes, overwrite=True):
        pass
    assert notes.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    check_replaceable(tmp_path / "missing")  # a new output folder is fine
