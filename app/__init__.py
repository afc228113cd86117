"""Papershelf: a self-hostable browser for each day's arXiv papers."""

__version__ = "0.1.0"
