"""The command line's value callbacks: text into the values the library takes."""

import click
import pytest

from cli import values
from geoseg.config import with_class


def test_a_label_file_may_carry_its_class_after_a_colon(tmp_path):
    existing = tmp_path / "odd:name.gpkg"
    existing.write_text("")
    assert with_class("roads.gpkg:road") == ("roads.gpkg", "road")
    assert with_class("/vsicurl/https://example.org/b.gpkg:building") == (
        "/vsicurl/https://example.org/b.gpkg", "building")
    assert with_class("buildings.gpkg") == ("buildings.gpkg", None)
    assert with_class("C:\\data\\buildings.gpkg") == ("C:\\data\\buildings.gpkg", None)  # a drive letter
    assert with_class("https://example.org/b.gpkg") == ("https://example.org/b.gpkg", None)
    assert with_class(str(existing)) == (str(existing), None)  # a file of that very name


def test_class_thresholds_are_name_probability_pairs():
    assert values.class_thresholds(None, None, "road=0.3, water = 0.6") == (("road", 0.3), ("water", 0.6))
    assert values.class_thresholds(None, None, "flat roof=0.5") == (("flat roof", 0.5),)
    assert values.class_thresholds(None, None, None) is None
    for bad in ("road", "road=high", "=0.3"):
        with pytest.raises(click.BadParameter):
            values.class_thresholds(None, None, bad)
