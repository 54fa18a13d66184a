"""What may cross rpyc by value: ``Wire``, the plain tuples the ``..._from_wire`` functions
of dfs.wire take apart, and ``plain()`` for small containers."""

from __future__ import annotations

from typing import Any

# What arrives from rpyc: plain tuples whose layout the ``..._from_wire`` functions know.
Wire = Any


def plain(value: object) -> object:
    """Deep-convert lists/dicts to tuples of pairs so they cross by value (for small dicts)."""
    if isinstance(value, dict):
        return tuple((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    return value
