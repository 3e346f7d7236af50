"""``python -m engine`` is the ``groovecast`` command."""

from engine.cli import entry

entry()
