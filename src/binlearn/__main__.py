"""``python -m binlearn`` (also what ``torchrun -m binlearn`` runs)."""

import sys

from binlearn.cli import main

sys.exit(main())
