"""A synthetic town drawn from a seed: streets, houses (gabled, flat, terraced), paving, trees
and shadows, with every roof's footprint. ``geoseg.datasets.synth`` writes it as files."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Polygon, box
from shapely.ops import unary_union

from geoseg.io.raster import shapely_affine

DEFAULT_CRS = "EPSG:25832"


DEFAULT_ORIGIN = (356_000.0, 5_646_000.0)  # upper-left corner, metres in EPSG:25832


ROOF_COLOURS = np.array(
    [[0.62, 0.26, 0.18], [0.50, 0.22, 0.16], [0.36, 0.34, 0.36], [0.55, 0.52, 0.50],
     [0.42, 0.30, 0.24], [0.25, 0.26, 0.30]],
    dtype=np.float32,
)


PAVING_COLOURS = np.array(
    [[0.58, 0.56, 0.53], [0.40, 0.39, 0.40], [0.52, 0.40, 0.30]], dtype=np.float32
)


@dataclass(frozen=True)
class Town:
    """A synthetic scene: ``image`` uint8 ``(3, H, W)``, ``mask`` uint8 ``(H, W)`` 0/1,
    ``roofs`` polygons in ``crs`` map units, ``transform`` pixel → map; ``classes`` uint8
    ``(H, W)``: each pixel's class id, 0 background and ``CLASS_NAMES`` after it."""

    image: np.ndarray
    mask: np.ndarray
    roofs: list[Polygon]
    transform: Affine
    crs: str
    classes: np.ndarray | None = None
    kinds: bool = False  # ``classes`` holds ``KIND_NAMES`` (else ``CLASS_NAMES``)


# the classes a town's ``classes`` mask holds, ids 1…; with ``kinds`` roofs are two classes and ponds are drawn
CLASS_NAMES = ("roof", "road", "paving")
KIND_NAMES = ("gabled roof", "flat roof", "road", "paving", "water")


def make_town(
    width: int = 1024,
    height: int = 1024,
    seed: int = 0,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    terraces: float = 0.0,
    kinds: bool = False,
) -> Town:
    """Draw one town of ``width`` × ``height`` pixels, deterministic from ``seed``.

    ``terraces``: the share of house sites that hold a row of 2–5 terraced houses (5–7 m
    wide, sharing walls; one roof colour for the row or one each, one ridge along the row
    or one per house, a darker party-wall line between them) instead of a detached house.
    0 draws exactly the towns of earlier versions. ``kinds``: also ponds, and flat roofs (grey,
    no ridge) among the detached houses, from a random stream of their own; ``classes`` then
    holds ``KIND_NAMES`` (else ``CLASS_NAMES``), and the towns without it stay as they were."""
    rng = np.random.default_rng(seed)
    m = 1.0 / pixel_size  # pixels per metre
    angle = float(rng.uniform(0, 90))
    roads = _street_grid(width, height, m, angle, rng)
    houses, rows = _houses(width, height, m, angle, roads, rng, terraces)
    taken = unary_union([roads.buffer(0.5 * m), *[h.buffer(1.0 * m) for h in houses]])
    paving = _scatter(width, height, m, taken, rng, kind="paving", n=int(width * height / (900 * m * m)))
    taken = unary_union([taken, *paving])
    ponds, flat = [], np.zeros(len(houses), bool)
    if kinds:
        extra = np.random.default_rng(seed + 7919)
        ponds = _scatter(width, height, m, taken, extra, kind="pond", n=max(2, int(width * height / (2500 * m * m))))
        taken = unary_union([taken, *[p.buffer(1.0 * m) for p in ponds]])
        terraced = {i for row in rows for i in row}
        flat = np.array([i not in terraced and extra.random() < 0.4 for i in range(len(houses))], bool)
    trees = _scatter(width, height, m, taken, rng, kind="tree", n=int(width * height / (250 * m * m)))

    shape = (height, width)
    img = _background(shape, rng)
    _paint(img, [roads], shape, np.array([[0.33, 0.33, 0.35]]), rng, texture=0.04)
    _paint(img, [r.buffer(0.12 * m) for r in _markings(roads, m)], shape, np.array([[0.85, 0.85, 0.82]]), rng)
    _paint(img, paving, shape, PAVING_COLOURS[rng.integers(0, len(PAVING_COLOURS), len(paving))], rng, 0.03)
    if ponds:
        _paint(img, ponds, shape, np.array([[0.14, 0.25, 0.32]]), rng, texture=0.02)
    sun = np.array([0.8, 0.6]) * m  # shadow offset per metre of height, pixels (x, y)
    heights = rng.uniform(3, 7, len(houses))
    shadows = [affinity.translate(h, *(sun * z)) for h, z in zip(houses, heights)]
    shadows += [affinity.translate(t, *(sun * 4)) for t in trees]
    _shade(img, shadows, shape, 0.5)
    colours = ROOF_COLOURS[rng.integers(0, len(ROOF_COLOURS), len(houses))]
    colours = colours * rng.uniform(0.85, 1.15, (len(houses), 1)).astype(np.float32)
    ridges = [_gable_half(h) for h in houses]
    walls = []
    for row in rows:  # a terrace: houses[row], left to right
        if rng.random() < 0.5:  # one roof colour for the row, each house's a little lighter or darker
            colours[row] = colours[row[0]] / colours[row[0]].max() * colours[row].max(axis=1, keepdims=True)
        if rng.random() < 0.5:  # one ridge along the row
            half = _gable_half(unary_union([houses[i] for i in row]))
            for i in row:
                ridges[i] = houses[i].intersection(half)
        walls += [houses[i].intersection(houses[j]).buffer(0.15 * m) for i, j in zip(row, row[1:])]
    for i in np.flatnonzero(flat):  # a flat roof: grey gravel, no ridge
        colours[i] = np.array([0.52, 0.52, 0.50], np.float32) * colours[i].mean() / max(colours[i].mean(), 1e-3)
        ridges[i] = Polygon()
    _paint(img, houses, shape, colours, rng, texture=0.025)
    _shade(img, ridges, shape, 0.78)
    _shade(img, walls, shape, 0.85)
    tree_col = np.array([[0.16, 0.30, 0.12]]) * rng.uniform(0.7, 1.2, (len(trees), 1))
    _paint(img, trees, shape, tree_col, rng, texture=0.08)

    img = ndimage.gaussian_filter(img, sigma=(0.6, 0.6, 0))
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)
    mask = _rasterize(houses, shape).astype(np.uint8) if houses else np.zeros(shape, np.uint8)
    # each pixel's class, as painted: roofs on top
    road, pave, water, gabled, flat_roof = (2, 3, None, 1, None) if not kinds else (3, 4, 5, 1, 2)
    classes = np.where(_rasterize([roads], shape), road, 0).astype(np.uint8)
    if paving:
        classes[_rasterize(paving, shape).astype(bool)] = pave
    if ponds:
        classes[_rasterize(ponds, shape).astype(bool)] = water
    classes[mask > 0] = gabled
    if flat.any():
        classes[_rasterize([houses[i] for i in np.flatnonzero(flat)], shape).astype(bool)] = flat_roof

    transform = Affine(pixel_size, 0, origin[0], 0, -pixel_size, origin[1])
    frame = box(0, 0, width, height)  # the truth is what the scene shows: roofs clipped to its edge
    visible = [part for h in houses for part in getattr(h.intersection(frame), "geoms", [h.intersection(frame)])]
    roofs = [affinity.affine_transform(h, shapely_affine(transform)) for h in visible if h.area >= 1.0]
    return Town(image=np.ascontiguousarray(image), mask=mask, roofs=roofs, transform=transform, crs=crs,
                classes=classes, kinds=kinds)


# --- drawing -------------------------------------------------------------------------


def _street_grid(width, height, m, angle, rng):
    """A rotated grid of streets 6–8 m wide every 55–75 m, as one polygon in pixels."""
    cx, cy, reach = width / 2, height / 2, math.hypot(width, height)
    lines = []
    for axis in (0, 1):
        spacing = rng.uniform(55, 75) * m
        offset = rng.uniform(0, spacing)
        k = -reach
        while k < reach:
            seg = LineString([(k + offset, -reach), (k + offset, reach)]) if axis == 0 else \
                LineString([(-reach, k + offset), (reach, k + offset)])
            lines.append(seg.buffer(rng.uniform(3, 4) * m, cap_style="flat"))
            k += spacing
    grid = affinity.rotate(unary_union(lines), angle, origin=(0, 0))
    return affinity.translate(grid, cx, cy).intersection(box(-50, -50, width + 50, height + 50))


def _markings(roads, m):
    """Dashed centre lines are too fine to matter; mark the road edges instead (kerbs)."""
    edges = roads.boundary
    return [edges] if not edges.is_empty else []


def _house_shape(rng, m):
    w, d = rng.uniform(8, 16) * m, rng.uniform(7, 12) * m
    main = box(-w / 2, -d / 2, w / 2, d / 2)
    if rng.random() < 0.4:  # an L: a wing on one end
        ww, wd = rng.uniform(0.35, 0.6) * w, rng.uniform(4, 8) * m
        x0 = w / 2 - ww if rng.random() < 0.5 else -w / 2
        main = unary_union([main, box(x0, d / 2 - 0.5, x0 + ww, d / 2 + wd)])
    return main


def _terrace(rng, m):
    """A row of 2–5 terraced houses side by side along x, centred on the origin."""
    widths = rng.uniform(5, 7, int(rng.integers(2, 6))) * m
    d = rng.uniform(8, 10) * m
    edges = np.concatenate([[0.0], np.cumsum(widths)]) - widths.sum() / 2
    return [box(a, -d / 2, b, d / 2) for a, b in zip(edges, edges[1:])]


def _houses(width, height, m, angle, roads, rng, terraces=0.0):
    """Houses on a jittered lattice aligned with the streets, kept off roads and each other,
    and the terraces among them (lists of indexes into the houses, along each row)."""
    houses: list[Polygon] = []
    rows: list[list[int]] = []
    spacing = 21 * m
    cx, cy = width / 2, height / 2
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    n = int(math.hypot(width, height) / spacing) + 2
    road_zone = roads.buffer(1.5 * m)
    frame = box(0, 0, width, height).buffer(8 * m)
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            if rng.random() > 0.8:
                continue
            u, v = i * spacing + rng.uniform(-3, 3) * m, j * spacing + rng.uniform(-3, 3) * m
            x, y = cx + u * ca - v * sa, cy + u * sa + v * ca
            if not frame.contains(Polygon([(x, y), (x + 1, y), (x, y + 1)])):
                continue
            row = terraces > 0 and rng.random() < terraces
            rot = angle + (rng.normal(0, 6) if rng.random() < 0.8 else rng.uniform(0, 180))
            if row:
                rot = angle + rng.normal(0, 3)
                units = [affinity.translate(affinity.rotate(u, rot, origin=(0, 0)), x, y) for u in _terrace(rng, m)]
                whole = unary_union(units)
                if whole.intersects(road_zone) or any(whole.distance(o) < 2.0 * m for o in houses):
                    continue
                rows.append(list(range(len(houses), len(houses) + len(units))))
                houses += units
                continue
            h = affinity.translate(affinity.rotate(_house_shape(rng, m), rot, origin=(0, 0)), x, y)
            if h.intersects(road_zone) or any(h.distance(o) < 2.0 * m for o in houses):
                continue
            houses.append(h)
    return houses, rows


def _scatter(width, height, m, taken, rng, kind, n):
    out = []
    for _ in range(max(n, 0)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if kind == "pond":
            g = affinity.scale(
                Polygon([(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 20)[:-1]]),
                rng.uniform(4, 10) * m, rng.uniform(3, 7) * m, origin=(0, 0),
            )
        elif kind == "tree":
            g = affinity.scale(
                Polygon([(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 14)[:-1]]),
                rng.uniform(1.5, 4.5) * m, rng.uniform(1.5, 4.5) * m, origin=(0, 0),
            )
        else:
            w, d = rng.uniform(3, 12) * m, rng.uniform(3, 9) * m
            g = affinity.rotate(box(-w / 2, -d / 2, w / 2, d / 2), rng.uniform(0, 180), origin=(0, 0))
        g = affinity.translate(g, x, y)
        if not g.intersects(taken):
            out.append(g)
    return out


def _background(shape, rng):
    h, w = shape
    low = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 25)
    low /= max(float(np.abs(low).max()), 1e-6)
    mid = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 3)
    mid /= max(float(np.abs(mid).max()), 1e-6)
    grass = np.array([0.30, 0.40, 0.20], np.float32)
    soil = np.array([0.45, 0.38, 0.28], np.float32)
    t = np.clip(0.5 + 0.6 * low, 0, 1)[..., None]
    img = grass * (1 - t) + soil * t
    return (img * (1 + 0.12 * mid[..., None])).astype(np.float32)


def _rasterize(geoms, shape, values=None):
    items = zip(geoms, values if values is not None else [1] * len(geoms))
    return features.rasterize(
        ((g, int(v)) for g, v in items if not g.is_empty), out_shape=shape, fill=0, dtype="int32"
    )


def _paint(img, geoms, shape, colours, rng, texture=0.0):
    """Fill each geometry with its colour (one row of ``colours`` each, or one for all)."""
    geoms = [g for g in geoms if not g.is_empty]
    if not geoms:
        return
    idx = _rasterize(geoms, shape, range(1, len(geoms) + 1))
    inside = idx > 0
    colours = np.asarray(colours, np.float32)
    pal = np.vstack([np.zeros((1, 3), np.float32), np.broadcast_to(colours, (len(geoms), 3))])
    fill = pal[idx[inside]]
    if texture:
        fill = fill * (1 + rng.normal(0, texture, (fill.shape[0], 1))).astype(np.float32)
    img[inside] = fill


def _shade(img, geoms, shape, factor):
    geoms = [g for g in geoms if not g.is_empty]
    if geoms:
        img[_rasterize(geoms, shape) > 0] *= factor


def _gable_half(house):
    """The half of a roof on one side of its ridge (the long axis of its minimum rectangle)."""
    rect = house.minimum_rotated_rectangle
    xs, ys = rect.exterior.coords.xy
    p = list(zip(xs, ys))[:4]
    e1 = math.dist(p[0], p[1])
    e2 = math.dist(p[1], p[2])
    a, b = (p[0], p[1]) if e1 >= e2 else (p[1], p[2])
    c = house.centroid
    dx, dy = b[0] - a[0], b[1] - a[1]
    big = 10 * max(e1, e2)
    n = math.hypot(dx, dy) or 1.0
    ux, uy = dx / n * big, dy / n * big
    nx, ny = -uy, ux
    half = Polygon([(c.x - ux, c.y - uy), (c.x + ux, c.y + uy),
                    (c.x + ux + nx, c.y + uy + ny), (c.x - ux + nx, c.y - uy + ny)])
    return house.intersection(half)
