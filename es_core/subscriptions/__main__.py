"""``python -m es_core.subscriptions``: see ``es_core.subscriptions.cli``."""

import sys

from .cli import main

sys.exit(main())
