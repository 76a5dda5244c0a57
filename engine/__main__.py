"""`python -m engine`: the same command line as `barsafe`."""

import sys

from .cli import main

sys.exit(main())
