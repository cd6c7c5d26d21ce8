"""``python -m inetkit``: the ``inetkit`` command (see `inetkit.cli`)."""

import sys

from .cli import main

sys.exit(main())
