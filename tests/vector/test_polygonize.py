"""The numpy polygoniser against GDAL's, and the strip tracer against tracing the whole raster."""

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage

from geoseg.vector.polygonize import label_polygons, pixel_runs


def _masks(seed: int, count: int):
    """Random roof masks of every texture: salt and pepper (saddles everywhere), blobs with
    holes and islands in them, thin lines."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = rng.random((h, w)) < rng.uniform(0.2, 0.9)
        if k % 3 == 1:
            m = ndimage.binary_opening(m) | (rng.random((h, w)) < 0.03)
        elif k % 3 == 2:
            m = ndimage.binary_closing(m, iterations=2) & ~(rng.random((h, w)) < 0.1)
        yield m


def _rings(g) -> list:
    return [list(g.exterior.coords)] + [list(r.coords) for r in g.interiors]


def test_polygons_are_gdals_vertex_for_vertex():
    # every ring, its start, direction and the order of the holes as GDAL writes them
    compared = 0
    for mask in _masks(0, 240):
        labels, _ = ndimage.label(mask)
        polys, ids = label_polygons(labels, row0=7)
        gdal = {int(v): shapely.geometry.shape(g) for g, v in features.shapes(
            labels.astype(np.int32), mask=mask, connectivity=4, transform=Affine.translation(0, 7))}
        assert ids.tolist() == sorted(gdal)
        for g, k in zip(polys, ids):
            assert g.is_valid and _rings(g) == _rings(gdal[int(k)])
            compared += 1
    assert compared > 5000


def test_no_component_no_polygon():
    polys, ids = label_polygons(np.zeros((4, 5), np.int32))
    assert len(polys) == len(ids) == 0


@pytest.mark.parametrize("rows", [1, 3, 8, 40])
def test_strips_trace_what_the_whole_raster_traces(rows):
    # components carried down from strip to strip are traced whole: the same rings as tracing
    # the raster at once; with a carry of at most one strip, tall ones are traced in parts and
    # joined: the same polygons (rings maybe from another vertex, with more in line)
    import geoseg.vector.strips as gv

    for mask in _masks(1, 60):
        h, w = mask.shape
        prob = np.where(mask, 200, 10).astype(np.uint8)
        whole = gv.StripTracer(h, w, rows=h)
        one = whole.feed(0, prob) + whole.close()
        thin = gv.StripTracer(h, w, rows=rows, carry_strips=1 if rows == 3 else None)
        many = [p for r0 in range(0, h, 5) for p in thin.feed(r0, prob[r0:r0 + 5])] + thin.close()
        assert len(one) == len(many)
        key = lambda p: (p.geom.bounds, p.pixels)  # noqa: E731
        for a, b in zip(sorted(one, key=key), sorted(many, key=key)):
            assert a.pixels == b.pixels and a.prob_sum == pytest.approx(b.prob_sum)
            if thin.split:  # a union keeps the vertex where two parts' edges met, in line
                assert a.geom.equals(b.geom) and len(a.geom.interiors) == len(b.geom.interiors)
            else:
                assert _rings(a.geom) == _rings(b.geom)


def test_components_of_the_runs_are_ndimage_labels():
    # the same components, numbered alike (raster order of their first pixels): polygons come
    # out in the same order as from ``ndimage.label``'s image
    from geoseg.vector.parts import RunComponents

    for mask in _masks(2, 120):
        c = RunComponents.of(mask)
        labels, n = ndimage.label(mask)
        assert c.n == n
        np.testing.assert_array_equal(c.image(np.ones(len(c.label), dtype=bool)), labels)


def test_runs_are_every_row_run():
    # every maximal run of True along each row, in row-major order: the last run may end the
    # image, a row may be full or empty
    rng = np.random.default_rng(4)
    for k in range(60):
        h, w = rng.integers(1, 12), rng.integers(1, 12)
        on = rng.random((h, w)) < rng.random()
        if k % 3 == 0:
            on[-1, -1] = True
        want = [(r, a, b) for r in range(h) for a, b in _row_runs(on[r])]
        runs = pixel_runs(on)
        assert list(zip(*(v.tolist() for v in runs))) == want


def _row_runs(row):
    runs, start = [], None
    for x, v in enumerate([*row.tolist(), False]):
        if v and start is None:
            start = x
        elif not v and start is not None:
            runs.append((start, x))
            start = None
    return runs
