"""Where tiles and windows fall: the frozen tile grid of a scene (the one place for tile-size
and margin defaults) and the spatial hold-out blocks of labelled scenes."""

from geoseg._lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "blocks": ("BLOCK_TILES", "MIN_BLOCKS", "Labelled", "Zones", "spatial_split", "validation_windows"),
    "grid": ("Tile", "TileGrid", "DEFAULT_TILE", "DEFAULT_MARGIN", "choose_tile", "choose_grid"),
})
