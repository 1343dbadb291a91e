"""``python -m mrizoo`` runs the command line."""

import sys

from mrizoo.cli import main

sys.exit(main())
