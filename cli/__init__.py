"""The `leadersboard` command line: the one package that imports every component."""

from .main import main

__all__ = ["main"]
