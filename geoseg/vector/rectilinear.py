"""Right-angled roofs: an outline replaced by a rectilinear fit along its dominant direction
when the fit keeps the outline's shape (IoU), and the IoU of two polygons."""

from __future__ import annotations

import numpy as np
from shapely import affinity
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry


def polygon_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection over union of two (multi)polygons' areas; 0 when both are empty."""
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


RECT_IOU = 0.85  # the least IoU with the traced outline for a right-angled fit to replace it


FIT_SLACK = 0.02  # a simpler fit wins over a closer one within this much IoU


def regularize(geom: Polygon, pixel: float, tolerance: float | None = None) -> Polygon:
    """``geom`` snapped to right angles along its dominant direction (see the module's
    docstring); ``pixel``: the pixel side, in ``geom``'s units; ``tolerance``: the
    simplification before the fit (default: one pixel).

    Fits are tried along two estimates of the direction (the simplified edges' and the
    minimum rotated rectangle's) with edges of at least 2, 4 and 8 pixels; the one with the
    fewest corners among those within ``FIT_SLACK`` of the best IoU with ``geom`` wins, so
    the wobble of a predicted outline does not become steps."""
    simple = geom.simplify(pixel if tolerance is None else tolerance, preserve_topology=True)
    if simple.is_empty or simple.area == 0:
        return simple
    rect = geom.minimum_rotated_rectangle
    angles = {round(_dominant_angle(np.asarray(c.exterior.coords)), 3) for c in (simple, rect)}
    fits = [(f, polygon_iou(f, geom)) for f in (_right_angled(geom, simple, a, k * pixel)
                                         for a in angles for k in (2, 4, 8)) if f is not None]
    if fits:
        top = max(iou for _, iou in fits)
        if top >= RECT_IOU:
            return min(((f, iou) for f, iou in fits if iou >= top - FIT_SLACK),
                       key=lambda fi: (len(fi[0].exterior.coords), -fi[1]))[0]
    return rect if polygon_iou(rect, geom) >= RECT_IOU else _keep_area(simple, geom, pixel)


def _right_angled(geom: Polygon, simple: Polygon, theta: float, min_edge: float) -> Polygon | None:
    """``simple`` made rectilinear along direction ``theta`` (radians), keeping ``geom``'s area."""
    centre = geom.centroid
    turned = affinity.rotate(simple, -theta, origin=centre, use_radians=True)
    ring = _rectilinear(np.asarray(turned.exterior.coords), min_edge)
    if ring is None:
        return None
    holes = [h for h in (_rectilinear(np.asarray(r.coords), min_edge) for r in turned.interiors) if h is not None]
    fit = Polygon(ring, holes)
    if not fit.is_valid:
        fit = Polygon(ring)
    fit = affinity.rotate(fit, theta, origin=centre, use_radians=True)
    return _keep_area(fit, geom, min_edge) if fit.is_valid and fit.area > 0 else None


def _keep_area(fit: Polygon, geom: Polygon, pixel: float) -> Polygon:
    """Simplification keeps staircase corners, which sit inside or outside the true edge:
    move ``fit``'s edges out or in together so that it has ``geom``'s area (mitred corners
    stay right angles)."""
    grow = (geom.area - fit.area) / fit.length
    if abs(grow) <= 1e-9 * pixel:
        return fit
    grown = fit.buffer(grow, join_style="mitre")
    return grown if isinstance(grown, Polygon) and grown.is_valid and not grown.is_empty else fit


def _dominant_angle(coords: np.ndarray) -> float:
    """The direction (radians, in (−π/4, π/4]) that the ring's edges follow, modulo 90°: the
    length-weighted circular mean of four times their angles, divided by four."""
    d = np.diff(coords, axis=0)
    z = np.sum(np.hypot(d[:, 0], d[:, 1]) * np.exp(4j * np.arctan2(d[:, 1], d[:, 0])))
    return float(np.angle(z) / 4)


def _rectilinear(coords: np.ndarray, min_edge: float) -> np.ndarray | None:
    """A closed ring (already turned so its dominant direction is x) → a ring of horizontal
    and vertical edges, or None when none fits. Each edge is classed horizontal or vertical;
    a run of one class becomes one line at the run's length-weighted mean offset; the
    shortest edge under ``min_edge`` is removed (its two neighbours, parallel, merge) until
    none is left or the ring is a rectangle."""
    p = coords[:-1]
    d = np.roll(p, -1, axis=0) - p
    length = np.hypot(d[:, 0], d[:, 1])
    horiz = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    mid = p + d / 2
    offset = np.where(horiz, mid[:, 1], mid[:, 0])
    changes = np.flatnonzero(horiz != np.roll(horiz, 1))
    if len(changes) < 4:
        return None
    lines: list[list] = []  # [horizontal, Σ offset·length, Σ length]
    for i in np.r_[changes[0] : len(p), 0 : changes[0]]:
        if lines and lines[-1][0] == horiz[i]:
            lines[-1][1] += offset[i] * length[i]
            lines[-1][2] += length[i]
        else:
            lines.append([bool(horiz[i]), offset[i] * length[i], length[i]])
    while len(lines) >= 4 and len(lines) % 2 == 0:
        off = np.array([s / w if w > 0 else s for _, s, w in lines])
        nxt = np.roll(off, -1)
        # vertex i joins line i and line i + 1: (x, y) from whichever of them is vertical
        vx = np.where([h for h, _, _ in lines], nxt, off)
        vy = np.where([h for h, _, _ in lines], off, nxt)
        v = np.column_stack([vx, vy])
        edges = np.hypot(*(v - np.roll(v, 1, axis=0)).T)  # line i runs from vertex i − 1 to vertex i
        k = int(np.argmin(edges))
        if edges[k] >= min_edge or len(lines) == 4:
            return np.vstack([v, v[:1]])
        lines = lines[k - 1 :] + lines[: k - 1]  # line k − 1 first (k = 0: the last one)
        a, b = lines[0], lines[2]
        lines = [[a[0], a[1] + b[1], a[2] + b[2]]] + lines[3:]
    return None
