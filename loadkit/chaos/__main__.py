"""`python -m loadkit.chaos`: same as `loadkit chaos`."""

import sys

from loadkit.chaos.cli import main

sys.exit(main(sys.argv[1:]))
