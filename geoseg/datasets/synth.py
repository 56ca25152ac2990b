"""Synthetic data as files, made from ``town.make_town``: scenes with their roof footprints,
labelled tiles, a training folder, and mosaics of any size for benchmarks. The demo, the
tests and the benchmarks make their own data with it; nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from affine import Affine
from shapely import affinity
from shapely.geometry import box

from geoseg.datasets.classes import CLASSES_FILE
from geoseg.datasets.town import CLASS_NAMES, DEFAULT_CRS, DEFAULT_ORIGIN, KIND_NAMES, Town, make_town


def write_scene(town: Town, path: str | Path) -> None:
    """Write the town's image as a tiled, compressed RGB GeoTIFF."""
    import rasterio

    profile = dict(
        driver="GTiff", width=town.image.shape[2], height=town.image.shape[1], count=3,
        dtype="uint8", crs=town.crs, transform=town.transform, tiled=True,
        blockxsize=256, blockysize=256, compress="deflate", photometric="RGB",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(town.image)


def write_truth(town: Town, path: str | Path) -> None:
    """Write the true roof polygons (scene CRS) as a GeoPackage."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": np.arange(1, len(town.roofs) + 1)}, geometry=town.roofs, crs=town.crs)
    gdf.to_file(path, driver="GPKG")


def write_tiles(town: Town, out_dir: str | Path, tile_size: int = 256, prefix: str = "tile",
                classes: bool = False) -> int:
    """Cut the town into labelled GeoTIFF tiles under ``images/`` and ``masks/``; return the
    count. ``classes``: masks of class ids (``town.CLASS_NAMES``), named in ``classes.json``."""
    import rasterio
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    _, h, w = town.image.shape
    n = 0
    for r in range(0, h - tile_size + 1, tile_size):
        for c in range(0, w - tile_size + 1, tile_size):
            t = window_transform(Window(c, r, tile_size, tile_size), town.transform)
            name = f"{prefix}_{r // tile_size:03d}_{c // tile_size:03d}.tif"
            common = dict(driver="GTiff", width=tile_size, height=tile_size, crs=town.crs, transform=t)
            with rasterio.open(out / "images" / name, "w", count=3, dtype="uint8", photometric="RGB",
                               **common) as dst:
                dst.write(town.image[:, r : r + tile_size, c : c + tile_size])
            with rasterio.open(out / "masks" / name, "w", count=1, dtype="uint8", **common) as dst:
                if classes:
                    dst.write(town.classes[None, r : r + tile_size, c : c + tile_size])
                else:
                    dst.write(town.mask[None, r : r + tile_size, c : c + tile_size] * 255)
            n += 1
    if classes:
        names = KIND_NAMES if town.kinds else CLASS_NAMES
        (out / CLASSES_FILE).write_text(json.dumps({"classes": list(names)}) + "\n")
    return n


def write_dataset(
    out_dir: str | Path, seed: int = 0, tile_size: int = 256, train_size: int = 1536,
    scene_size: int = 1024, pixel_size: float = 0.3, classes: bool = False,
) -> dict[str, Path]:
    """Write a complete synthetic task under ``out_dir``.

    ``train/images`` + ``train/masks`` (labelled tiles cut from one town),
    ``scene.tif`` (another town, never seen in training) and ``truth.gpkg``
    (its roof polygons). Returns the paths by name. ``classes``: towns with ponds and flat
    roofs, whose masks hold gabled roofs, flat roofs, roads, paving and water
    (``town.KIND_NAMES``, in ``classes.json``), and ``test/``: the scene's town cut into tiles
    labelled so, to score a multi-class model on.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_town = make_town(train_size, train_size, seed=seed, pixel_size=pixel_size, kinds=classes)
    write_tiles(train_town, out / "train", tile_size, classes=classes)
    scene_town = make_town(
        scene_size, scene_size, seed=seed + 1, pixel_size=pixel_size,
        origin=(DEFAULT_ORIGIN[0] + train_size * pixel_size + 500.0, DEFAULT_ORIGIN[1]), kinds=classes,
    )
    write_scene(scene_town, out / "scene.tif")
    write_truth(scene_town, out / "truth.gpkg")
    paths = {"train": out / "train", "scene": out / "scene.tif", "truth": out / "truth.gpkg"}
    if classes:
        write_tiles(scene_town, out / "test", tile_size, classes=True)
        paths["test"] = out / "test"
    return paths


def write_mosaic(path: str | Path, size: int, seed: int = 0, block: int = 2048, variants: int = 4,
                 pixel_size: float = 0.3, truth_path: str | Path | None = None, terraces: float = 0.0) -> int:
    """Write a ``size`` × ``size`` scene of towns laid side by side, block by block.

    For benchmarks of scenes larger than memory: ``variants`` towns of ``block`` pixels
    are drawn once and repeated, so memory is bounded by one town whatever ``size``.
    Returns the number of roofs; writes their polygons to ``truth_path`` when given.
    """
    import rasterio
    from rasterio.windows import Window

    towns = [make_town(block, block, seed=seed + k, pixel_size=pixel_size, terraces=terraces)
             for k in range(variants)]
    transform = Affine(pixel_size, 0, DEFAULT_ORIGIN[0], 0, -pixel_size, DEFAULT_ORIGIN[1])
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs=DEFAULT_CRS,
                   transform=transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                   photometric="RGB", BIGTIFF="IF_SAFER")
    roofs = []
    with rasterio.open(path, "w", **profile) as dst:
        for i, r in enumerate(range(0, size, block)):
            for j, c in enumerate(range(0, size, block)):
                town = towns[(i + 2 * j) % variants]
                h, w = min(block, size - r), min(block, size - c)
                dst.write(town.image[:, :h, :w], window=Window(c, r, w, h))
                if truth_path is not None:
                    dx, dy = c * pixel_size, -r * pixel_size
                    inside = box(DEFAULT_ORIGIN[0], DEFAULT_ORIGIN[1] - h * pixel_size,
                                 DEFAULT_ORIGIN[0] + w * pixel_size, DEFAULT_ORIGIN[1])
                    roofs += [affinity.translate(g, dx, dy) for g in town.roofs if inside.contains(g)]
                else:
                    roofs += [None] * len(town.roofs)
    if truth_path is not None:
        import geopandas as gpd

        gpd.GeoDataFrame({"id": np.arange(1, len(roofs) + 1)}, geometry=roofs, crs=DEFAULT_CRS).to_file(
            truth_path, driver="GPKG")
    return len(roofs)


def write_scene_dataset(out_dir: str | Path, size: int = 2048, seed: int = 0, label_share: float = 0.5,
                        pixel_size: float = 0.3, block: int = 2048, terraces: float = 0.0) -> dict[str, Path]:
    """Write an orthophoto with building footprints as a user has them: ``ortho.tif`` (a
    ``size``² scene in EPSG:25832; a mosaic of towns, written block by block, above
    ``block`` pixels), ``buildings.gpkg`` (the footprints of its left ``label_share`` only,
    in lon/lat, as an OpenStreetMap extract that covers part of the imagery, with a
    ``building`` attribute), ``label_extent.gpkg`` (that labelled part, in lon/lat) and
    ``truth.gpkg`` (every roof, in the scene's CRS, to score against). ``terraces``: as
    ``make_town``'s. Returns the paths."""
    import geopandas as gpd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"ortho": out / "ortho.tif", "labels": out / "buildings.gpkg", "extent": out / "label_extent.gpkg",
             "truth": out / "truth.gpkg"}
    if size <= block:
        town = make_town(size, size, seed=seed, pixel_size=pixel_size, terraces=terraces)
        write_scene(town, paths["ortho"])
        write_truth(town, paths["truth"])
    else:
        write_mosaic(paths["ortho"], size, seed=seed, block=block, pixel_size=pixel_size, truth_path=paths["truth"],
                     terraces=terraces)
    truth = gpd.read_file(paths["truth"])
    x0, y1 = DEFAULT_ORIGIN
    labelled = box(x0, y1 - size * pixel_size, x0 + label_share * size * pixel_size, y1)
    known = truth[truth.geometry.centroid.within(labelled)]
    gpd.GeoDataFrame({"building": ["yes"] * len(known)}, geometry=known.geometry.values, crs=truth.crs).to_crs(
        4326).to_file(paths["labels"], driver="GPKG")
    gpd.GeoDataFrame({"name": ["labelled"]}, geometry=[labelled], crs=truth.crs).to_crs(4326).to_file(
        paths["extent"], driver="GPKG")
    return paths
