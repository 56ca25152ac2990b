"""``python -m geoseg.cli``: the ``geoseg`` command."""

from geoseg.cli import main

main(prog_name="geoseg")
