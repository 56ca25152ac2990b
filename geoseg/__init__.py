"""geoseg: tiled geospatial segmentation, from labelled tiles to roof polygons.

The library is one module per stage (the architecture page, ``docs/ARCHITECTURE.md``):
``io`` reads scenes by windows, ``tiling`` lays the tile grid, ``data``/``augment``/
``model``/``losses``/``train`` learn a U-Net, ``predict``/``stitch`` run it over a scene,
``vectorize``/``export`` turn the stitched probability into polygons on disk, and
``pipeline`` is the ``geoseg predict`` job around them. Torch is imported only by the
modules that need it.
"""

__version__ = "0.1.0"
