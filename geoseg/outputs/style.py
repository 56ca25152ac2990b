"""A QGIS style for roof polygons: outlined in amber over a faint fill, so roofs show at once.

QGIS loads ``<name>.qml`` beside a vector file as that layer's default style, and reads a
GeoPackage's ``layer_styles`` table (the style marked ``useAsDefault``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def _fill(name: str, colour: str, fill_alpha: int) -> str:
    """A QGIS fill symbol: ``colour`` ("#rrggbb") outlined, filled at ``fill_alpha`` (0…255)."""
    rgb = ",".join(str(int(colour[k:k + 2], 16)) for k in (1, 3, 5))
    return f"""      <symbol type="fill" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">
        <data_defined_properties><Option type="Map"><Option type="QString" name="name" value=""/>
          <Option name="properties"/><Option type="QString" name="type" value="collection"/></Option>
        </data_defined_properties>
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="color" value="{rgb},{fill_alpha}"/>
            <Option type="QString" name="joinstyle" value="miter"/>
            <Option type="QString" name="outline_color" value="{rgb},255"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.6"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="style" value="solid"/>
          </Option>
        </layer>
      </symbol>
"""


def _qml(renderer: str, body: str) -> str:
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <renderer-v2 {renderer} symbollevels="0" enableorderby="0" forceraster="0">
{body}    <rotation/>
    <sizescale/>
  </renderer-v2>
  <layerGeometryType>2</layerGeometryType>
</qgis>
"""


ROOF_QML = _qml('type="singleSymbol"', f"    <symbols>\n{_fill('0', '#ffc800', 40)}    </symbols>\n")


def qml_path(vector_path: str | os.PathLike) -> Path:
    """Where QGIS looks for a file layer's default style: the same name with ``.qml``."""
    return Path(vector_path).with_suffix(".qml")


def style_qml(classes: tuple[str, ...] = ("background", "roof"), colours: tuple[str, ...] = ()) -> str:
    """The layer's QGIS style: ``ROOF_QML`` for roofs; for more classes, categorised by the
    ``class`` column, each class in its colour (``colours``, by class id: the checkpoint's)."""
    if len(classes) <= 2:
        return ROOF_QML
    from xml.sax.saxutils import quoteattr

    cats = "".join(f'      <category render="true" symbol="{i - 1}" value={quoteattr(n)} label={quoteattr(n)}/>\n'
                   for i, n in enumerate(classes) if i > 0)
    symbols = "".join(_fill(str(i - 1), colours[i], 60) for i in range(1, len(classes)))
    return _qml('type="categorizedSymbol" attr="class"',
                f"    <categories>\n{cats}    </categories>\n    <symbols>\n{symbols}    </symbols>\n")


def class_layer_qml(colour: str) -> str:
    """The style of one class's own layer (``predict --split-layers``): its colour alone."""
    return _qml('type="singleSymbol"', f"    <symbols>\n{_fill('0', colour, 60)}    </symbols>\n")


def write_qml(path: str | os.PathLike, classes: tuple[str, ...] = ("background", "roof"),
              colours: tuple[str, ...] = ()) -> None:
    """Write the layer's QGIS style (``style_qml``) to ``path``."""
    Path(path).write_text(style_qml(classes, colours), encoding="utf-8")


def embed_in_geopackage(gpkg: str | os.PathLike, layer: str = "roofs", geometry_column: str = "geom",
                        qml: str = ROOF_QML) -> None:
    """Store the style ``qml`` in the GeoPackage's ``layer_styles`` table as the layer's default."""
    with sqlite3.connect(gpkg) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),"
            " f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,"
            " useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),"
            # ISO 8601 as the GeoPackage standard writes a DATETIME (GDAL warns on SQLite's own format)
            " update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,"
            " styleName, styleQML, styleSLD, useAsDefault, description, owner)"
            " VALUES ('', '', ?, ?, 'geoseg roofs', ?, '', 1, 'roof outlines', '')",
            (layer, geometry_column, qml),
        )
        db.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description)"
            " VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles')"
        )
