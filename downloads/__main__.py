"""``python -m downloads``: see ``downloads.cli``."""

import sys

from .cli import main

sys.exit(main())
