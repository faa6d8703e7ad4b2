"""`python -m automix ...`, the same as the `automix` console script."""

import sys

from automix.cli import main

sys.exit(main())
