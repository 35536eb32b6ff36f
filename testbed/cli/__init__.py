"""The ``testbed`` command line: one module per subcommand in ``testbed.cli.commands``.

Only this package turns errors into messages and exit codes (see ``testbed.cli.main``).
"""
