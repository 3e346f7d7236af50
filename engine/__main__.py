"""``python -m engine`` is the ``groovecast`` command."""

import sys

from engine.cli import main

sys.exit(main())
