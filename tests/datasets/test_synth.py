import numpy as np
from rasterio import features
from shapely.geometry import box

from geoseg.datasets.town import make_town


def test_same_seed_same_town_and_mask_matches_polygons():
    a, b = make_town(256, 256, seed=7), make_town(256, 256, seed=7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, make_town(256, 256, seed=8).image)
    assert a.roofs and 0.02 < a.mask.mean() < 0.4
    rast = features.rasterize([(g, 1) for g in a.roofs], out_shape=a.mask.shape, transform=a.transform)
    assert np.array_equal(rast, a.mask)


def test_roofs_are_in_the_scene_crs_and_sit_on_roof_coloured_pixels():
    t = make_town(384, 384, seed=2)
    assert t.crs == "EPSG:25832"
    west, north = t.transform.c, t.transform.f
    extent = box(west - 10, north - 384 * 0.3 - 10, west + 384 * 0.3 + 10, north + 10)
    for roof in t.roofs:
        assert extent.contains(roof) and roof.area > 20  # m², in the scene's metres
    inside = t.image[:, t.mask > 0].astype(float).mean(1)
    outside = t.image[:, t.mask == 0].astype(float).mean(1)
    assert np.abs(inside - outside).max() > 10  # roofs are not background-coloured on average


def test_terraces_are_rows_of_houses_sharing_walls_and_leave_other_towns_unchanged():
    import hashlib

    import shapely

    plain = make_town(256, 256, seed=7)
    assert np.array_equal(plain.image, make_town(256, 256, seed=7, terraces=0.0).image)
    # the towns of earlier versions, pixel for pixel (starter model, benches and figures were made on them)
    assert hashlib.sha256(plain.image.tobytes()).hexdigest()[:16] == "6a4288ea64366505"
    t = make_town(768, 768, seed=3, terraces=0.5)
    geoms = np.array(t.roofs, dtype=object)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = {(i, j) for i, j in zip(a.tolist(), b.tolist()) if i < j}
    assert len(pairs) >= 10  # neighbours in a row share a wall
    shared = [geoms[i].intersection(geoms[j]) for i, j in pairs]
    assert all(s.area < 1e-6 for s in shared)  # walls, never overlaps
    assert np.median([s.length for s in shared]) > 7.0  # 8-10 m deep (less where the scene's edge cuts a row)
