"""`python -m hookline.cli`: the same as the `hookline` console script."""

import sys

from hookline.cli import main

sys.exit(main())
