"""The ``dfs`` command (console script ``dfs = dfs.cli:main``)."""

from dfs.cli.main import main

__all__ = ["main"]
