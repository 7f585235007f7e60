"""``python -m workbench tour``: the headless tour and the HTML export of the notebooks."""

import sys

from .tour import main

sys.exit(main())
