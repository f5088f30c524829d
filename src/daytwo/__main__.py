"""``python -m daytwo`` runs the CLI."""

from daytwo.cli.main import entry

entry()
