"""Subcommands of the ``simspine`` CLI, one module each (see :mod:`simspine.cli`)."""
