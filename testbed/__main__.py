"""``python -m testbed`` is the ``testbed`` command."""

from testbed.cli.main import entry_point

entry_point()
