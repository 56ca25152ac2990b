"""The tree shows the layers: every public name is reachable from its subpackage, modules stay
small, the old flat module paths still import (with a warning naming the new place), and every
option has its help and says its default once."""

import importlib
import pkgutil
import warnings
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import geoseg
from geoseg.cli import main

ROOT = Path(geoseg.__file__).parent
SUBPACKAGES = sorted(m.name for m in pkgutil.iter_modules([str(ROOT)]) if m.ispkg and m.name != "cli")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_public_name_is_reachable_from_its_subpackage(name):
    package = importlib.import_module(f"geoseg.{name}")
    assert package.__doc__, f"geoseg.{name} says what it holds"
    for public in package.__all__:
        assert getattr(package, public) is not None, (name, public)
    if name in ("qgis",):  # the plugin is QGIS's to import
        return
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg and not module.name.startswith("_"):
            mod = importlib.import_module(f"geoseg.{name}.{module.name}")
            assert mod.__doc__, f"geoseg.{name}.{module.name} says what it holds"


def test_no_module_is_long():
    lines = {p: len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert not {p: n for p, n in lines.items() if n > 400}, "no module in geoseg/ over 400 lines"
    cli = Path(main.callback.__code__.co_filename).parent
    assert not {p: n for p in cli.glob("*.py") if (n := len(p.read_text().splitlines())) > 120}, \
        "no module in cli/ over 120 lines"


@pytest.mark.parametrize("old, name, new", [
    ("geoseg.pipeline", "run_predict", "geoseg.jobs"),
    ("geoseg.train", "fit", None),  # a package now, with the same name
    ("geoseg.synth", "write_dataset", "geoseg.datasets"),
    ("geoseg.vectorize", "PolygonStream", "geoseg.vector"),
    ("geoseg.checkpoint", "load", "geoseg.models.checkpoint"),
    ("geoseg.tiling", "choose_grid", "geoseg.samplers.grid"),
])
def test_the_flat_layouts_module_paths_still_import(old, name, new):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert callable(getattr(module, name))
    if new:
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in said), said


def test_the_everyday_names_are_at_the_top():
    from geoseg.jobs.predict import run_predict
    from geoseg.train.loop import fit

    assert geoseg.run_predict is run_predict and geoseg.fit is fit and callable(geoseg.load_checkpoint)


def test_the_config_knows_the_losses_the_training_has():
    from geoseg.config import LOSS_NAMES
    from geoseg.train.losses import LOSSES

    assert set(LOSS_NAMES) == set(LOSSES)


def test_every_section_a_field_names_has_a_title():
    from geoseg.cli.options import TITLES
    from geoseg.config import SECTIONS

    assert set(TITLES) == set(SECTIONS)


def _options(command: click.Command):
    return [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_has_help_and_says_its_default_once(name):
    for option in _options(main.commands[name]):
        assert option.help, (name, option.opts)
        said = option.help.count("[default")
        assert said == 0, (name, option.opts, "the default goes in show_default, said once by click")
    text = CliRunner().invoke(main, [name, "--help"], terminal_width=100).output
    assert text.count("[default") <= len(_options(main.commands[name]))


def test_predict_help_shows_the_everyday_options_first_within_a_screen():
    text = CliRunner().invoke(main, ["predict", "--help"], terminal_width=100).output
    lines = text.splitlines()
    everyday = lines.index("Everyday options:")
    section = lines[everyday:lines.index("", everyday)]
    assert everyday < 10 and len(lines[:everyday + len(section)]) <= 30
    for flag in ("--model", "--out", "--threshold", "--min-area", "--regularize"):
        assert any(line.strip().startswith(flag) for line in section), flag
