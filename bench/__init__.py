"""geoseg's benchmarks of speed and memory, run by one harness: ``python -m bench NAME``."""
