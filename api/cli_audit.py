"""``clearshelf audit``: the fairness audit from the command line (see ``fairness``)."""

from __future__ import annotations
