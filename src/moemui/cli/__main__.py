"""``python -m moemui.cli``: the ``moemui`` command."""

import sys

from moemui.cli import main

sys.exit(main())
