"""``rayzer.cli.build_parser(only=...)``: one command's parser, the same as in the full one."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from rayzer.cli import COMMANDS, build_parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_commands_lists_every_command_in_help_order():
    assert tuple(_commands(build_parser())) == tuple(COMMANDS)


def test_the_overview_prints_the_same_help_without_importing_any_command():
    assert build_parser(overview=True).format_help() == build_parser().format_help()
    code = (
        "import sys, rayzer.cli\n"
        "for argv in (['--help'], [], ['nope']):\n"
        "    try:\n"
        "        rayzer.cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout[-2000:]
    assert "usage: rayzer" in out.stdout and "invalid choice: 'nope'" in out.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_one_command_parser_equals_the_full_one(command):
    full = _commands(build_parser())[command]
    only = _commands(build_parser(command))
    assert list(only) == [command]
    assert only[command].format_help() == full.format_help()
    for name, subparser in _commands(full).items() if command in ("data", "bench") else ():
        assert _commands(only[command])[name].format_help() == subparser.format_help()


def test_rayzer_infer_does_not_import_the_other_commands():
    code = (
        "import sys, rayzer.cli\n"
        "try:\n"
        "    rayzer.cli.main(['infer', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('rayzer.bench', 'rayzer.train.cli'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]
