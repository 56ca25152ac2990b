"""geoseg's QGIS plugin (``geoseg/qgis/plugin``, a Processing provider that runs the geoseg
command), written where QGIS finds it."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from geoseg.errors import InputError
from geoseg.outputs.atomic import atomic_output, check_output

PLUGIN = Path(__file__).resolve().parent / "plugin"


FILES = ("__init__.py", "plugin.py", "provider.py", "algorithms.py", "runner.py", "metadata.txt")


def write_plugin(dest: str | os.PathLike, overwrite: bool = False, created: list | None = None) -> Path:
    """``dest/geoseg`` (a folder QGIS loads), or a zip holding ``geoseg/`` when ``dest`` ends
    in ``.zip``. A plugins folder whose parent exists is made (and appended to ``created``).
    Returns what was written."""
    created = [] if created is None else created
    dest = Path(dest)
    if dest.suffix.lower() == ".zip":
        check_output(dest, overwrite)
        with atomic_output(dest, overwrite) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in FILES:
                zf.write(PLUGIN / name, f"geoseg/{name}")
        return dest
    if not dest.is_dir():
        if dest.exists() or not dest.parent.is_dir():
            raise InputError(f"{dest}: no such folder; give QGIS's plugins folder (see 'geoseg qgis-plugin --help')")
        dest.mkdir()  # a profile that never had a plugin has python/ but no plugins/ yet
        created.append(dest)
    target = dest / "geoseg"
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise InputError(f"{target}: exists; pass `overwrite` to replace the plugin there")
        # never empty a folder geoseg did not write
        if target.is_symlink() or (any(target.iterdir()) and not _is_our_plugin(target)):
            raise InputError(f"{target}: is not geoseg's plugin; `overwrite` replaces only geoseg's plugin, so move"
                             " that folder away first")
        shutil.rmtree(target)
    target.mkdir()
    for name in FILES:
        shutil.copy(PLUGIN / name, target / name)
    return target


def _is_our_plugin(folder: Path) -> bool:
    """Whether ``folder`` holds geoseg's plugin (its metadata names it) and nothing else."""
    try:
        meta = (folder / "metadata.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    extra = {p.name for p in folder.iterdir()} - set(FILES) - {"__pycache__"}
    return "name=geoseg" in meta.replace(" ", "") and not extra
