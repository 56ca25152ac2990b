"""``python -m bench NAME [options]``: see ``bench/harness.py``."""

import sys

from bench.harness import main

main(sys.argv[1:])
