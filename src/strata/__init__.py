"""Strata: a self-hostable AT Protocol stack with no single upstream at any hop."""

__version__ = "0.1.0"
