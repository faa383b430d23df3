"""``python -m audiotok`` (and ``torchrun -m audiotok encode ...``)."""

import sys

from audiotok.cli import main

sys.exit(main())
