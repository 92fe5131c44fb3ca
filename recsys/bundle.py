"""Versioned model bundles on disk.

Layout under ``<home>/models``::

    <version>/manifest.json   what, when, from which data, with which config and libraries
    <version>/recommender.pkl the fitted recommender (retrievers, item table, ranker)
    <version>/ranker_<n>.txt  the LightGBM ranker(s) as text, for audit and SHAP tools
    ACTIVE                    the active version's name

A bundle is written aside (``.tmp-<version>``) and renamed into place, so a
reader never sees half a bundle; ``ACTIVE`` is replaced atomically too.
Bundles are trusted local files (the recommender is pickled): never load one
from a source you do not control.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import shutil
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from recsys.errors import BundleError

MANIFEST_SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "version", "created_at", "data", "config", "metrics", "libraries", "files")
LIBRARIES = ("clearshelf", "implicit", "lightgbm", "numpy", "scipy", "polars", "sentence-transformers", "shap", "torch")
ACTIVE_FILE = "ACTIVE"
MODEL_FILE = "recommender.pkl"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class BundleInfo:
    version: str
    path: Path
    manifest: dict[str, Any]
    active: bool


class ModelRegistry:
    """The bundles under one ``models`` directory: save, list, activate, load, prune."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def new_version(self, fingerprint: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{stamp}-{fingerprint[:8]}"

    def save(
        self,
        model: Any,
        *,
        version: str,
        data: dict[str, Any],
        config: Any,
        metrics: dict[str, Any],
        extra_files: dict[str, bytes] | None = None,
        activate: bool = True,
        keep: int = 5,
    ) -> BundleInfo:
        """Write a bundle atomically, optionally activate it and prune old ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / version
        if final.exists():
            raise BundleError(f"a bundle named {version} already exists in {self.directory}")
        tmp = self.directory / f".tmp-{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            model.version_ = version
            with (tmp / MODEL_FILE).open("wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
            ranker = getattr(model, "ranker_", None)
            if ranker is not None:
                ranker.save(tmp)
            for name, blob in (extra_files or {}).items():
                (tmp / name).write_bytes(blob)
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "version": version,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "data": _jsonable(data),
                "config": _jsonable(config),
                "metrics": _jsonable(metrics),
                "libraries": library_versions(),
                "files": files,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if activate:
            self.activate(version)
        self.prune(keep=keep)
        return BundleInfo(version, final, manifest, activate)

    def active_version(self) -> str | None:
        path = self.directory / ACTIVE_FILE
        if not path.exists():
            return None
        return path.read_text().strip() or None

    def activate(self, version: str) -> None:
        """Make ``version`` the active bundle (it must exist and validate)."""
        self.read_manifest(version)
        tmp = self.directory / f".{ACTIVE_FILE}.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.directory / ACTIVE_FILE)

    def versions(self) -> list[BundleInfo]:
        """Every complete bundle, newest first."""
        if not self.directory.exists():
            return []
        active = self.active_version()
        out = []
        for p in sorted(self.directory.iterdir(), reverse=True):
            if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists():
                try:
                    manifest = json.loads((p / "manifest.json").read_text())
                except json.JSONDecodeError:
                    continue
                out.append(BundleInfo(p.name, p, manifest, p.name == active))
        return out

    def prune(self, *, keep: int) -> list[str]:
        """Delete the oldest bundles beyond ``keep`` (never the active one)."""
        removed = []
        inactive = [b for b in self.versions() if not b.active]
        budget = max(keep - (1 if self.active_version() else 0), 0)
        for b in inactive[budget:]:
            shutil.rmtree(b.path, ignore_errors=True)
            removed.append(b.version)
        return removed

    def read_manifest(self, version: str) -> dict[str, Any]:
        """The validated manifest of ``version``; :class:`BundleError` says what is wrong."""
        path = self.directory / version
        if not path.is_dir():
            have = ", ".join(b.version for b in self.versions()) or "none"
            raise BundleError(f"no model bundle '{version}' in {self.directory} (bundles: {have})")
        mpath = path / "manifest.json"
        if not mpath.exists():
            raise BundleError(f"bundle {path} has no manifest.json: it is incomplete; retrain or delete it")
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"manifest of bundle {path} is not valid JSON ({exc}); retrain") from exc
        missing = [k for k in REQUIRED_KEYS if k not in manifest]
        if missing:
            raise BundleError(f"manifest of bundle {path} lacks {', '.join(missing)}; retrain")
        if manifest["schema_version"] != MANIFEST_SCHEMA_VERSION:
            raise BundleError(
                f"bundle {path} has manifest schema {manifest['schema_version']}, this clearshelf reads "
                f"{MANIFEST_SCHEMA_VERSION}: retrain with `clearshelf train`"
            )
        for name, digest in manifest["files"].items():
            f = path / name
            if not f.exists():
                raise BundleError(f"bundle {path} is missing {name}; retrain or restore it")
            if _sha256(f) != digest:
                raise BundleError(f"bundle {path}: {name} does not match its checksum (corrupted or edited); retrain")
        return manifest

    def load(self, version: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Load ``version`` (default: the active one) after validating its manifest."""
        version = version or self.active_version()
        if version is None:
            raise BundleError(f"no active model in {self.directory}: run `clearshelf train` first")
        manifest = self.read_manifest(version)
        with (self.directory / version / MODEL_FILE).open("rb") as fh:
            model = pickle.load(fh)
        model.version_ = version
        return model, manifest
