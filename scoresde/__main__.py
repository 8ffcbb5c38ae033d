"""``python -m scoresde``: the command line (see :mod:`scoresde.cli`)."""

import sys

from scoresde.cli import main

sys.exit(main())
