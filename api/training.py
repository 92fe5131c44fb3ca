"""Training as the service and the CLI run it: every bundle carries its SHAP summary.

``recsys`` cannot import ``explain``, so the summary files are handed to the
training job here, the one place every entry point (``clearshelf train``,
``demo``, ``serve --demo``, ``POST /admin/train``) trains through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsys.bundle import BundleInfo
from recsys.data.store import Store


def train_bundle(store: Store, home: Path, **kwargs: Any) -> BundleInfo:
    """:func:`recsys.training.train_from_store` with the explanation summary as extra bundle files."""
    from explain.summary import bundle_files
    from recsys.training import train_from_store

    return train_from_store(store, home, extra_files=bundle_files, **kwargs)
