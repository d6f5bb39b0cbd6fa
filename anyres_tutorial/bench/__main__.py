"""``python -m anyres_tutorial.bench``: see ``anyres_tutorial.bench`` and ``--help``."""

import sys

from .entry import main

sys.exit(main())
