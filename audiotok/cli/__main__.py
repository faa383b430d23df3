"""``python -m audiotok.cli``: the same as the ``audiotok`` command."""

import sys

from audiotok.cli import main

sys.exit(main())
