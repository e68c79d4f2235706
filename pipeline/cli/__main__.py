"""``python -m pipeline.cli`` runs the ``strongroom`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
