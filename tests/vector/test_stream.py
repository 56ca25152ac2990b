import numpy as np
import pytest
from affine import Affine

from geoseg.config import VectorizeOptions
from geoseg.errors import InputError
from geoseg.vector.stream import PolygonStream, vectorize
from tests.conftest import write_tif

T = Affine(0.5, 0, 356_000.0, 0, -0.5, 5_646_000.0)  # 0.5 m pixels


def prob_raster(tmp_path, prob, crs="EPSG:25832"):
    return write_tif(tmp_path / "prob.tif", (np.asarray(prob) * 255).round().astype(np.uint8), crs=crs, transform=T)


def test_a_square_roof_becomes_one_polygon_of_the_right_area_and_place(tmp_path):
    p = np.zeros((100, 120))
    p[20:40, 30:70] = 0.9  # 20 × 40 px = 10 m × 20 m
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0))
    assert len(gdf) == 1 and gdf.crs.to_epsg() == 25832
    row = gdf.iloc[0]
    assert row.area_m2 == pytest.approx(200.0) and row.score == pytest.approx(0.9, abs=0.005)
    assert row.geometry.bounds == pytest.approx((356_015.0, 5_645_980.0, 356_035.0, 5_645_990.0))
    assert row.geometry.exterior.is_ccw and row.geometry.is_valid


def test_a_roof_across_strip_edges_is_one_polygon_with_the_right_area(tmp_path):
    p = np.zeros((100, 60))
    p[5:95, 10:20] = 1.0   # crosses every strip edge at rows 16, 32, 48, 64, 80
    p[30:50, 15:50] = 1.0  # a wing, so the roof is not a rectangle
    p[60:62, 40:43] = 1.0  # a speck, dropped by min area
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, strip_rows=16))
    expected_px = 90 * 10 + 20 * 30
    assert len(gdf) == 1
    assert gdf.iloc[0].area_m2 == pytest.approx(expected_px * 0.25)
    whole = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, strip_rows=1000))
    assert whole.iloc[0].geometry.equals(gdf.iloc[0].geometry)


def test_threshold_min_area_and_holes(tmp_path):
    p = np.zeros((60, 60))
    p[10:50, 10:50] = 0.8
    p[25:30, 25:30] = 0.0  # a hole
    p[2:4, 2:4] = 0.9      # 4 px: below the default 20 px
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0))
    assert len(gdf) == 1 and len(gdf.iloc[0].geometry.interiors) == 1
    assert not gdf.iloc[0].geometry.interiors[0].is_ccw
    assert len(vectorize(prob_raster(tmp_path, p), VectorizeOptions(threshold=0.85))) == 0
    assert len(vectorize(prob_raster(tmp_path, p), VectorizeOptions(min_area=0.5, simplify=0))) == 2


def test_no_crs_gives_pixel_polygons(tmp_path):
    p = np.zeros((30, 30))
    p[5:15, 5:25] = 1
    path = write_tif(tmp_path / "px.tif", (p * 255).astype(np.uint8), crs=None, transform=Affine.identity())
    gdf = vectorize(path, VectorizeOptions(simplify=0))
    assert gdf.crs is None and gdf.iloc[0].area_px2 == 200 and gdf.iloc[0].perimeter_px == 60
    assert gdf.iloc[0].geometry.bounds == (5, 5, 25, 15)


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": 1.2}, {"min_area": -1}])
def test_bad_options(kwargs):
    with pytest.raises(InputError):
        VectorizeOptions(**kwargs)


def test_perimeter_fill_holes_and_a_geographic_scene_measured_in_metres(tmp_path):
    p = np.zeros((60, 60))
    p[10:50, 10:50] = 0.8  # 20 m × 20 m at 0.5 m pixels
    p[25:27, 25:27] = 0.0  # a 1 m² hole
    gdf = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0, fill_holes=2.0))
    row = gdf.iloc[0]
    assert len(row.geometry.interiors) == 0 and row.area_m2 == pytest.approx(400.0)
    assert row.perimeter_m == pytest.approx(80.0)
    # the same roof in a scene in WGS 84: areas and perimeters still in metres (local UTM)
    deg = Affine(5e-6, 0, 6.96, 0, -5e-6, 50.95)  # ~0.35 m × 0.56 m pixels near Cologne
    geo = write_tif(tmp_path / "geo.tif", (p * 255).astype(np.uint8), crs="EPSG:4326", transform=deg)
    g = vectorize(geo, VectorizeOptions(simplify=0, fill_holes=0)).iloc[0]
    assert g.area_m2 == pytest.approx(1596 * 5e-6 * 111_320 * 5e-6 * 111_320 * np.cos(np.radians(50.95)), rel=0.01)
    assert len(g.geometry.interiors) == 1
    filled = vectorize(geo, VectorizeOptions(simplify=0)).iloc[0]  # by default a pinhole (4 px, 0.8 m²) is filled
    assert len(filled.geometry.interiors) == 0 and filled.area_m2 / g.area_m2 == pytest.approx(1600 / 1596, rel=1e-3)


@pytest.mark.parametrize("pixel,rows,cols,filled", [(0.3, 2, 2, True), (0.3, 1, 19, True), (0.3, 3, 7, False),
                                                    (0.3, 6, 6, False), (1.0, 1, 1, True), (1.0, 1, 2, False)])
def test_pinholes_are_filled_by_default_and_courtyards_kept(tmp_path, pixel, rows, cols, filled):
    # by default holes under 20 pixels' area, at most 2 m², are filled: pinholes of the probability
    p = np.zeros((60, 60))
    p[5:55, 5:55] = 0.9
    p[20 : 20 + rows, 20 : 20 + cols] = 0.0  # a hole of rows × cols pixels
    hole = rows * cols
    t = Affine(pixel, 0, 356_000.0, 0, -pixel, 5_646_000.0)
    g = vectorize(write_tif(tmp_path / "r.tif", (p * 255).astype(np.uint8), transform=t),
                  VectorizeOptions(simplify=0)).iloc[0]
    assert len(g.geometry.interiors) == (0 if filled else 1)
    assert g.area_m2 == pytest.approx((2500 - (0 if filled else hole)) * pixel**2)


def test_opening_splits_roofs_joined_by_a_bridge_and_is_the_same_strip_by_strip(tmp_path):
    p = np.zeros((100, 90))
    p[10:40, 10:40] = 0.9
    p[10:40, 50:80] = 0.9
    p[24:26, 40:50] = 0.9  # a 1 m wide bridge (2 px)
    p[60:100, 0:30] = 0.9  # a roof cut by the scene's lower and left edges keeps its area
    path = prob_raster(tmp_path, p)
    assert len(vectorize(path, VectorizeOptions(simplify=0))) == 2
    opened = vectorize(path, VectorizeOptions(simplify=0, opening=1.0))  # 2 px radius
    assert len(opened) == 3
    # a disk rounds off the outer corners (one pixel each), not the edges cut by the scene's
    assert sorted(opened.area_m2) == pytest.approx([225.0 - 4 * 0.25, 225.0 - 4 * 0.25, 300.0 - 0.25])
    strips = vectorize(path, VectorizeOptions(simplify=0, opening=1.0, strip_rows=7))
    assert len(strips) == 3
    for a, b in zip(strips.sort_values("area_m2").geometry, opened.sort_values("area_m2").geometry):
        assert a.equals(b)


def _squares(seed: int) -> np.ndarray:
    """A 120 × 90 probability of 25 random overlapping rectangles at 0.9."""
    rng = np.random.default_rng(seed)
    p = np.zeros((120, 90))
    for _ in range(25):
        r, c, h, w = rng.integers(0, 110), rng.integers(0, 80), rng.integers(3, 30), rng.integers(3, 30)
        p[r : r + h, c : c + w] = 0.9
    return p


def test_rows_handed_over_in_ragged_blocks_give_the_polygons_of_the_raster(tmp_path):
    """How predict traces: blocks of any sizes, as the stitcher finishes them, with an opening."""
    p = _squares(3)
    path = prob_raster(tmp_path, p)
    opts = VectorizeOptions(simplify=0, opening=1.0, strip_rows=16)
    expected = vectorize(path, opts)
    stream = PolygonStream(path, opts)
    rows = (np.asarray(p) * 255).round().astype(np.uint8)
    cuts = [0, 1, 2, 40, 41, 77, 90, 120]  # blocks of 1, 1, 38, 1, 36, 13 and 30 rows
    chunks = [stream.feed(a, rows[a:b]) for a, b in zip(cuts, cuts[1:])] + [stream.close()]
    got = [g for chunk in chunks for g in chunk.geometry]
    assert len(got) == len(expected) > 5
    key = lambda g: (round(g.bounds[0], 3), round(g.bounds[1], 3))  # noqa: E731
    for a, b in zip(sorted(got, key=key), sorted(expected.geometry, key=key)):
        assert a.equals(b)
    with pytest.raises(ValueError, match="out of order"):
        PolygonStream(path, opts).feed(5, rows[5:9])


def _interior_angles(ring) -> np.ndarray:
    c = np.asarray(ring.coords)[:-1]
    a, b = np.roll(c, 1, axis=0) - c, np.roll(c, -1, axis=0) - c
    cos = (a * b).sum(1) / np.hypot(*a.T) / np.hypot(*b.T)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def _rasterised(geoms, shape_):
    from rasterio import features as rf

    return rf.rasterize([(g, 1) for g in geoms], out_shape=shape_).astype(float) * 0.9


@pytest.mark.parametrize("angle", [0, 17, 33, 45, 71])
def test_regularize_gives_right_angles_few_vertices_and_no_loss_of_iou(tmp_path, angle):
    from shapely import affinity
    from shapely.geometry import Point, Polygon

    ell = affinity.rotate(Polygon([(20, 20), (50, 20), (50, 32), (34, 32), (34, 45), (20, 45)]), angle,
                          origin=(35, 35))
    disc = Point(90, 35).buffer(12)
    p = _rasterised([ell, disc], (80, 120))
    to_map = (T.a, T.b, T.d, T.e, T.c, T.f)
    truth = [affinity.affine_transform(g, to_map) for g in (ell, disc)]
    raw = vectorize(prob_raster(tmp_path, p), VectorizeOptions(simplify=0)).sort_values("area_m2", ascending=False)
    reg = vectorize(prob_raster(tmp_path, p), VectorizeOptions(regularize=True)).sort_values("area_m2",
                                                                                           ascending=False)
    assert len(reg) == 2 and reg.is_valid.all() and all(g.exterior.is_ccw for g in reg.geometry)
    roof = reg.geometry.iloc[0]
    assert len(roof.exterior.coords) == 7  # six corners
    np.testing.assert_allclose(_interior_angles(roof.exterior), 90.0, atol=1e-6)
    iou = [g.intersection(t).area / g.union(t).area for g, t in zip(reg.geometry, truth)]
    raw_iou = [g.intersection(t).area / g.union(t).area for g, t in zip(raw.geometry, truth)]
    assert iou[0] >= raw_iou[0] - 0.01 and iou[0] > 0.92
    # a round roof is not forced into right angles
    assert len(reg.geometry.iloc[1].exterior.coords) > 7 and iou[1] >= raw_iou[1] - 0.01


def test_regularize_in_a_geographic_scene_keeps_right_angles_in_metres(tmp_path):
    p = np.zeros((60, 60))
    p[10:50, 15:40] = 0.9
    deg = Affine(5e-6, 0, 6.96, 0, -5e-6, 50.95)  # pixels 0.35 m wide, 0.56 m tall
    geo = write_tif(tmp_path / "geo.tif", (p * 255).astype(np.uint8), crs="EPSG:4326", transform=deg)
    g = vectorize(geo, VectorizeOptions(regularize=True))
    utm = g.to_crs(32632).geometry.iloc[0]
    assert len(utm.exterior.coords) == 5
    np.testing.assert_allclose(_interior_angles(utm.exterior), 90.0, atol=0.05)


def test_a_polygon_over_every_strip_keeps_its_holes_when_joined_strip_by_strip():
    # roof everywhere but for holes: one polygon crosses every strip; its holes are set aside
    # while it is open and must come back, each in its place
    from geoseg.vector.strips import StripTracer

    rng = np.random.default_rng(3)
    prob = np.full((240, 160), 255, np.uint8)
    for y, x in zip(rng.integers(0, 237, 60), rng.integers(0, 157, 60)):
        prob[y:y + 3, x:x + 3] = 0
    prob[100:140, 40:44] = 0  # a hole that crosses a strip edge
    prob[50:52, :] = 0  # a cut: two polygons above and below, each with its own holes
    whole = StripTracer(240, 160, rows=240)
    thin = StripTracer(240, 160, rows=8)
    one = whole.feed(0, prob) + whole.close()
    many = [p for r0 in range(0, 240, 24) for p in thin.feed(r0, prob[r0:r0 + 24])] + thin.close()
    assert len(one) == len(many) == 2
    for a, b in zip(sorted(one, key=lambda p: p.geom.bounds), sorted(many, key=lambda p: p.geom.bounds)):
        assert a.geom.equals(b.geom) and len(a.geom.interiors) == len(b.geom.interiors) > 5
        assert a.pixels == b.pixels and a.prob_sum == pytest.approx(b.prob_sum)


@pytest.mark.parametrize("crs, options", [
    ("EPSG:25832", VectorizeOptions()),
    ("EPSG:25832", VectorizeOptions(min_area=3.0, simplify=0)),
    ("EPSG:25832", VectorizeOptions(regularize=True)),
    ("EPSG:4326", VectorizeOptions()),
    (None, VectorizeOptions(strip_rows=24)),
])
def test_specks_left_untraced_change_no_polygon(tmp_path, monkeypatch, crs, options):
    """Components too small to pass the minimum area are not traced (a weak model's speckle
    costs a polygon each): the output is the one tracing every component gives."""
    import geoseg.vector.stream as gv

    rng = np.random.default_rng(0)
    p = (rng.random((160, 200)) > 0.93).astype(float)  # specks of 1-6 px everywhere
    p[20:60, 30:90] = p[70:76, 10:14] = p[100:103, 100:107] = p[120:150, 150:190] = 0.9  # roofs, small ones
    p[40:48, 120:123] = 0.9  # 24 px in a 3 × 8 box: passes the default 20 px
    if crs == "EPSG:4326":  # about 0.35 × 0.55 m pixels near Cologne
        path = write_tif(tmp_path / "prob.tif", (p * 255).round().astype(np.uint8), crs=crs,
                         transform=Affine(5e-6, 0, 7.0, 0, -5e-6, 51.0))
    else:
        path = prob_raster(tmp_path, p, crs=crs)
    fast = vectorize(path, options)
    monkeypatch.setattr(gv, "least_box", lambda frame, options: 0.0)
    every = vectorize(path, options)
    assert len(fast) == len(every) > 3
    assert all(a.equals_exact(b, 0) for a, b in zip(fast.geometry, every.geometry))
    assert fast.drop(columns="geometry").equals(every.drop(columns="geometry"))


@pytest.mark.parametrize("options", [VectorizeOptions(strip_rows=16), VectorizeOptions(strip_rows=24, opening=1.0),
                                     VectorizeOptions(strip_rows=16, split=0.85)])
def test_strips_traced_in_a_thread_or_worker_processes_give_the_same_polygons_in_the_same_order(tmp_path, options):
    from dataclasses import replace

    from geoseg.vector.table import PolygonTable

    rng = np.random.default_rng(1)
    p = (rng.random((150, 120)) > 0.97).astype(float)  # specks
    p[5:140, 10:20] = p[30:50, 15:110] = 0.9  # a roof across every strip edge
    p[60:66, 30:34] = p[100:118, 40:100] = p[120:148, 60:70] = 0.8  # small and large roofs, some on edges
    p[100:118, 69:71] = 0.0  # two roofs touching nothing but each other's corner rows
    p[70:90, 40:100] = 0.95  # a terrace across a strip edge, its houses apart at valleys (with ``split``)
    p[70:90, 59:61] = p[70:90, 79:81] = 0.7
    path = prob_raster(tmp_path, p)
    data = (p * 255).round().astype(np.uint8)

    def stream(workers, threads):
        s = PolygonStream(path, replace(options, trace_workers=workers, trace_threads=threads))
        chunks = [s.feed(r, data[r : r + 13]) for r in range(0, len(data), 13)] + [s.close()]
        return PolygonTable.concat([c for c in chunks if len(c)]).frame()

    alone = stream(0, 0)
    assert len(alone) >= (7 if options.split else 5)
    assert options.split or vectorize(path, replace(options, split=0.85)).shape[0] == len(alone) + 2
    for other in (stream(2, 0), stream(0, 1), stream(0, 3), stream(1, 1)):
        assert len(other) == len(alone)
        assert all(a.equals_exact(b, 0) for a, b in zip(alone.geometry, other.geometry))
        assert alone.drop(columns="geometry").equals(other.drop(columns="geometry"))
        assert list(other.id) == list(range(1, len(other) + 1))


def test_an_error_in_the_tracing_thread_is_raised_in_the_caller(tmp_path):
    from geoseg.vector.stream import PolygonStream

    path = prob_raster(tmp_path, np.zeros((64, 40)))
    s = PolygonStream(path, VectorizeOptions(trace_threads=1, trace_workers=0, strip_rows=16))
    s.feed(0, np.zeros((16, 40), np.uint8))
    s.feed(32, np.zeros((16, 40), np.uint8))  # rows 16…31 skipped: the thread's tracer refuses it
    with pytest.raises(ValueError, match="out of order"):
        for _ in range(100):
            s.feed(48, np.zeros((16, 40), np.uint8))
    s.abandon()


@pytest.mark.parametrize("name", ["trace_workers", "trace_threads"])
def test_a_negative_number_of_tracers_is_refused(name):
    with pytest.raises(InputError, match=f"`{name}` must be 0 or more"):
        VectorizeOptions(**{name: -1})


@pytest.mark.slow
def test_a_killed_tracing_worker_is_one_error_and_the_next_run_has_a_fresh_pool(tmp_path):
    from geoseg.errors import GeosegError
    from geoseg.vector.stream import trace_pool

    p = _squares(4)
    path = prob_raster(tmp_path, p)
    opts = VectorizeOptions(simplify=0, strip_rows=16, trace_workers=3, trace_threads=0)
    rows = (np.asarray(p) * 255).round().astype(np.uint8)
    stream = PolygonStream(path, opts)
    pool = trace_pool(3)
    pool.submit(int).result()  # the workers are up
    for proc in list(pool._processes.values()):
        proc.kill()  # as the out-of-memory killer would
    with pytest.raises(GeosegError, match="a tracing worker process died"):
        stream.feed(0, rows)
        stream.close()
    assert trace_pool(3) is not pool  # a fresh pool for the next run, which traces as before
    fresh = PolygonStream(path, opts)
    got = [fresh.feed(0, rows), fresh.close()]
    assert sum(len(c) for c in got) == len(vectorize(path, VectorizeOptions(simplify=0, strip_rows=16)))
