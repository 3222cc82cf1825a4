"""`python -m kvinstall`."""

from kvinstall.cli.main import run

run()
