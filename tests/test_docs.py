"""The README must keep up with the code: commands, settings, files and make targets it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coach import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands() -> list[str]:
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_cli_subcommand_is_in_the_readme(command):
    assert re.search(rf"\bcoach (--\S+ \S+ )?{command}\b", README), f"README does not show `coach {command}`"


def _env_vars_in_code() -> list[str]:
    found: set[str] = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "coach").glob("*.py"))]:
        found |= set(re.findall(r"""environ(?:\.get)?\(\s*["'](COACH_[A-Z_]+)""", path.read_text(encoding="utf-8")))
        found |= set(re.findall(r"""_env_path\(\s*["'](COACH_[A-Z_]+)""", path.read_text(encoding="utf-8")))
    return sorted(found)


def test_the_code_reads_settings_from_the_environment():
    assert "COACH_MODEL" in _env_vars_in_code()  # the scan itself works


@pytest.mark.parametrize("var", _env_vars_in_code())
def test_every_environment_setting_is_documented(var):
    assert f"`{var}`" in README, f"{var} is read by the code but not documented in README.md"


def _linked_paths() -> list[str]:
    links = re.findall(r"\]\(([^)#]+)\)", README)  # markdown links and images
    return sorted({link for link in links if "://" not in link})


@pytest.mark.parametrize("link", _linked_paths())
def test_readme_links_point_at_files_in_the_repo(link):
    assert (ROOT / link).exists(), f"README links {link}, which does not exist"


@pytest.mark.parametrize(
    "path", sorted(set(re.findall(r"`((?:corpus|docs|bench|scripts|eval|coach|tests)/[\w./-]+)`", README)))
)
def test_paths_named_in_the_readme_exist(path):
    assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_the_two_setup_commands_exist_and_ci_runs_the_tests():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    for target in re.findall(r"`?make ([\w-]+)", README):
        assert target in targets, f"README mentions `make {target}`, the Makefile has no such target"
    assert {"run", "test"} <= targets
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_cli_help_examples_name_real_subcommands():
    for command in re.findall(r"^\s+coach (?:--\S+ \S+ )?(\w+)", cli.EPILOG, re.M):
        assert command in _subcommands(), command
