"""`python -m mocks`: same as `loadkit mock`."""

import sys

from mocks.cli import main

sys.exit(main(sys.argv[1:]))
