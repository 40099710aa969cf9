"""Every program has a man page with the standard sections, listing every one of its options."""

import importlib
import pkgutil
import re

import click
import pytest

import lmtools.cli
from tests.conftest import ROOT

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"]


def _programs():
    for mod in pkgutil.iter_modules(lmtools.cli.__path__):
        if mod.name == "common" or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"lmtools.cli.{mod.name}")
        cmd = getattr(module, "main", None)
        if isinstance(cmd, click.Command):
            yield cmd


PROGRAMS = list(_programs())


def test_found_programs():
    names = {c.name for c in PROGRAMS}
    assert {"lm-count", "lm-info"} <= names


@pytest.mark.parametrize("cmd", PROGRAMS, ids=lambda c: c.name)
def test_man_page_lists_every_option(cmd):
    page = ROOT / "man" / f"{cmd.name}.1"
    assert page.exists(), f"{page} is missing"
    text = page.read_text().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    for section in SECTIONS:
        assert re.search(rf"^\.SH {section}\b", text, re.M), f"{page.name}: no {section} section"
    for param in cmd.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text), f"{page.name}: option {opt} missing"


def test_launchers_and_console_scripts():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for cmd in PROGRAMS:
        assert cmd.name in scripts
        launcher = ROOT / "bin" / cmd.name
        assert launcher.exists() and len(launcher.read_text().strip().splitlines()) == 3
