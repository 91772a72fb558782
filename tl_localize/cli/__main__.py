"""``python -m tl_localize.cli``."""

import sys

from . import main

sys.exit(main())
