"""``clearshelf serve`` and ``clearshelf keys``: the HTTP service from the command line."""

from __future__ import annotations
