"""Touching roofs apart: components of the roof mask cut at the valleys of the probability.

Terraced houses and semi-detached pairs are one component of the thresholded mask: their
roofs share a wall. A model trained with ``--contact-gap`` (and the loss that teaches it)
lowers the probability along that wall, mostly not below the threshold: the valley is
there (0.70 on the contact lines against 0.94 inside the roofs, measured by
``bench/terraces.py``), the gap is not. So each component is cut where it holds two or
more *seeds*, cores of high probability (pixels at or above the seed cut, eroded by one
pixel, at least ``SEED_PX`` of them): every pixel of the component goes to the seed it
reaches along the path whose lowest probability is highest. That is a watershed of the
probability (scikit-image's, which grows the pieces alike across a plateau, where scipy's
``watershed_ift`` hands a flat stretch to one seed). A component with fewer than two
seeds is left whole.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SEED_PX = 8  # a core of fewer pixels (after its erosion) is noise on one roof, not a roof of its own


_CROSS = ndimage.generate_binary_structure(2, 1)


def split_components(prob: np.ndarray, labels: np.ndarray, n: int,
                     seed_cut: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Cut the components of ``labels`` (0 background, 1…``n``, 4-connected; ``prob`` uint8,
    p × 255) that hold two or more seeds of probability ≥ ``seed_cut``.
    Returns ``(split, pieces)``: which labels (0…n) were cut, and a label image of their
    pieces (1…, 0 elsewhere), each piece 4-connected; None when no component is cut."""
    core = ndimage.binary_erosion(prob >= seed_cut, _CROSS) & (labels > 0)
    seeds, m = ndimage.label(core)
    if m < 2:
        return None
    at = np.flatnonzero(core)
    seed_of = seeds.ravel()[at]
    owner = np.zeros(m + 1, dtype=np.int64)
    owner[seed_of] = labels.ravel()[at]
    good = np.bincount(seed_of, minlength=m + 1) >= SEED_PX
    good[0] = False
    split = np.bincount(owner[good], minlength=n + 1) >= 2
    split[0] = False
    if not split.any():
        return None
    keep = good & split[owner]
    number = np.zeros(m + 1, dtype=np.int32)
    number[keep] = np.arange(1, np.count_nonzero(keep) + 1, dtype=np.int32)
    pieces = np.zeros(labels.shape, dtype=np.int32)
    boxes = ndimage.find_objects(labels, max_label=n)
    for k in np.flatnonzero(split):
        box = boxes[k - 1]
        inside = labels[box] == k
        grown = np.where(inside, number[seeds[box]], 0)
        _grow(grown, prob[box], inside)
        pieces[box][inside] = grown[inside]
    return split, pieces


def _grow(grown: np.ndarray, prob: np.ndarray, inside: np.ndarray) -> None:
    """Grow the seeds of ``grown`` (in place) over ``inside`` down the probability: a
    watershed of ``255 − prob`` (scikit-image's priority flood, first in first out among
    equal values, so pieces grow alike across a plateau; 4-connected). ``inside`` is
    4-connected and holds a seed, so it leaves no pixel of it unclaimed."""
    from skimage.segmentation import watershed

    grown[...] = watershed(255 - prob, grown, connectivity=1, mask=inside)


def piece_polygons(pieces: np.ndarray, row0: int = 0) -> tuple[list, np.ndarray]:
    """``(polygons, their labels)`` of a label image whose pieces may touch one another, in
    pixel coordinates (x = column, y = ``row0`` + row), traced by GDAL (4-connected) over the
    pieces' bounding box: neighbours share their common edge exactly."""
    import rasterio.features
    import shapely.geometry
    from affine import Affine

    rows, cols = np.flatnonzero(pieces.any(axis=1)), np.flatnonzero(pieces.any(axis=0))
    if not len(rows):
        return [], np.empty(0, dtype=np.int64)
    crop = pieces[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    shapes = rasterio.features.shapes(crop, mask=crop > 0, connectivity=4,
                                      transform=Affine.translation(int(cols[0]), row0 + int(rows[0])))
    polys, ids = [], []
    for geom, value in shapes:
        polys.append(shapely.geometry.shape(geom))
        ids.append(int(value))
    return polys, np.asarray(ids, dtype=np.int64)
