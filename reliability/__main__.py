"""``python -m reliability``: see ``reliability.cli``."""

import sys

from .cli import main

sys.exit(main())
