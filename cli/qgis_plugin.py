"""``geoseg qgis-plugin``: write geoseg's QGIS plugin (a Processing provider) where QGIS finds it."""

from __future__ import annotations

from pathlib import Path

import click
import cloup


@cloup.command("qgis-plugin")
@cloup.argument("dest", type=click.Path(path_type=Path))
@cloup.option("--overwrite", is_flag=True, help="Replace an existing geoseg plugin there.")
def qgis_plugin(dest: Path, overwrite: bool) -> None:
    """Write the plugin into DEST, QGIS's plugins folder (DEST/geoseg), or as a zip for
    Plugins > Install from ZIP when DEST ends in .zip.

    \b
    Linux:   ~/.local/share/QGIS/QGIS3/profiles/default/python/plugins
    Windows: %APPDATA%/QGIS/QGIS3/profiles/default/python/plugins
    macOS:   ~/Library/Application Support/QGIS/QGIS3/profiles/default/python/plugins
    """
    from geoseg.qgis.install import write_plugin

    created: list = []
    where = write_plugin(dest, overwrite, created)
    for folder in created:
        click.echo(f"created {folder} (QGIS makes it with the first plugin; this is the first)")
    click.echo(f"QGIS plugin → {where}; enable 'geoseg' in Plugins > Manage and Install Plugins, then find"
               " geoseg in the Processing toolbox")
