"""Versioned thresholds: the serving policy and the audit's pass/warn/fail limits.

Every change (or rollback) appends a new row to the ``thresholds`` table; the
highest version is in force. When nothing is stored, the defaults are version
0 (never written, so the first ``set`` is version 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from fairness.errors import UNKNOWN_THRESHOLD_VERSION, ThresholdError
from recsys.data import schema
from recsys.data.store import Store
from recsys.ranking.policy import ServingPolicy


class PolicySettings(BaseModel):
    """How recommendations are served: score floor and fairness re-rank strength."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: float | None = Field(
        default=None, description="drop candidates whose ranker score is below this; null = keep all"
    )
    rerank_strength: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="0 = ranker order; 1 = full user-oriented re-rank for less-active customers",
    )

    def serving_policy(self) -> ServingPolicy:
        return ServingPolicy(min_score=self.min_score, rerank_strength=self.rerank_strength)


class MetricLimits(BaseModel):
    """Limits for one metric; ``None`` switches that rule off for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio_min: float | None = Field(default=None, gt=0.0, le=1.0)
    difference_max: float | None = Field(default=None, ge=0.0, le=1.0)


def _default_limits() -> dict[str, MetricLimits]:
    # Shares and levels near 0 make a ratio meaningless (0.01 vs 0.02 is "half"),
    # so the properties are judged on the absolute difference only.
    names = ("cold_start_share", "popularity", "private_label_share", "price_level", "category_diversity")
    return {n: MetricLimits(ratio_min=None, difference_max=0.05) for n in names}


class AuditSettings(BaseModel):
    """Limits the audit judges each metric's group gap against.

    ``ratio_min``/``difference_max`` apply to every metric not named in
    ``limits`` (metric names without their ``@k``; ``reason:*`` metrics use
    the difference rule only). Only metrics in ``judged`` count towards a
    report's overall status; the others are reported with a status for
    information.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio_min: float = Field(
        default=0.8, gt=0.0, le=1.0,
        description="worst group / best group must be at least this (four-fifths rule)",
    )
    difference_max: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="best group minus worst group must be at most this (absolute)",
    )
    min_group_size: int = Field(
        default=30, ge=1, le=1_000_000,
        description="groups with fewer customers are reported as too small to judge",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="bootstrap interval level")
    resamples: int = Field(default=1000, ge=500, le=20_000, description="bootstrap resamples")
    k: int = Field(default=10, ge=1, le=100, description="list length the audit judges")
    limits: dict[str, MetricLimits] = Field(default_factory=_default_limits)
    judged: tuple[str, ...] = Field(
        default=("ndcg", "recall", "hr", "cold_start_share"),
        description="metrics (without @k) whose status makes the report's status",
    )

    def limits_for(self, metric: str) -> MetricLimits:
        base = metric.split("@", 1)[0]
        if base in self.limits:
            return self.limits[base]
        if base.startswith("reason:"):
            return MetricLimits(ratio_min=None, difference_max=self.difference_max)
        return MetricLimits(ratio_min=self.ratio_min, difference_max=self.difference_max)

    def is_judged(self, metric: str) -> bool:
        return metric.split("@", 1)[0] in self.judged


class ThresholdSettings(BaseModel):
    """All tunable settings: ``{"policy": {...}, "audit": {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: PolicySettings = Field(default_factory=PolicySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ThresholdSettings:
        """Validate ``data``; raises :class:`ThresholdError` naming each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise ThresholdError(f"invalid threshold settings: {problems}") from exc


@dataclass(frozen=True)
class ThresholdVersion:
    version: int
    created_at: datetime | None
    actor: str
    settings: ThresholdSettings
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "actor": self.actor,
            "note": self.note,
            "settings": self.settings.model_dump(mode="json"),
        }


DEFAULT_VERSION = ThresholdVersion(
    version=0, created_at=None, actor="system", settings=ThresholdSettings(), note="defaults"
)


def _row_to_version(row: Any) -> ThresholdVersion:
    created = row.created_at
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ThresholdVersion(
        version=int(row.version), created_at=created, actor=row.actor,
        settings=ThresholdSettings.parse(row.settings), note=row.note,
    )


class ThresholdRepository:
    """Read and append threshold versions in the store (SQLite or PostgreSQL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def current(self) -> ThresholdVersion:
        """The version in force; the defaults as version 0 if none is stored."""
        t = schema.thresholds
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t).order_by(t.c.version.desc()).limit(1)).first()
        return _row_to_version(row) if row is not None else DEFAULT_VERSION

    def get(self, version: int) -> ThresholdVersion:
        if version == 0:
            return DEFAULT_VERSION
        t = schema.thresholds
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.version == version)).first()
            if row is None:
                known = [r[0] for r in conn.execute(select(t.c.version).order_by(t.c.version))]
                raise ThresholdError(UNKNOWN_THRESHOLD_VERSION.format(version=version, known=[0, *known]))
        return _row_to_version(row)

    def history(self, limit: int = 50) -> list[ThresholdVersion]:
        """Newest first; the defaults (version 0) close the list when there is room."""
        t = schema.thresholds
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.version.desc()).limit(limit)).fetchall()
        versions = [_row_to_version(r) for r in rows]
        if len(versions) < limit:
            versions.append(DEFAULT_VERSION)
        return versions

    def set(
        self, settings: ThresholdSettings | dict[str, Any], *, actor: str, note: str | None = None
    ) -> ThresholdVersion:
        """Append ``settings`` as the next version and return it."""
        if not isinstance(settings, ThresholdSettings):
            settings = ThresholdSettings.parse(settings)
        if not actor:
            raise ThresholdError("a threshold change needs an actor (api key id, 'cli' or 'system')")
        t = schema.thresholds
        payload = settings.model_dump(mode="json")
        # Two writers racing for the same version: the primary key rejects the
        # loser, who retries with the next number.
        for _attempt in range(5):
            now = datetime.now(UTC).replace(tzinfo=None)
            try:
                with self.store.transaction() as conn:
                    top = conn.execute(select(func.max(t.c.version))).scalar()
                    version = int(top or 0) + 1
                    conn.execute(
                        insert(t).values(
                            version=version, created_at=now, actor=actor[:64], settings=payload,
                            note=note,
                        )
                    )
            except IntegrityError:
                continue
            return ThresholdVersion(
                version=version, created_at=now.replace(tzinfo=UTC), actor=actor[:64],
                settings=settings, note=note,
            )
        raise ThresholdError("could not store the threshold change: too many concurrent writers, retry")

    def rollback(self, *, actor: str, to_version: int | None = None) -> ThresholdVersion:
        """Append a new version equal to ``to_version`` (default: the one before the current)."""
        current = self.current()
        if to_version is None:
            if current.version == 0:
                raise ThresholdError("nothing to roll back: only the defaults (version 0) exist")
            to_version = current.version - 1
        target = self.get(to_version)
        return self.set(
            target.settings, actor=actor, note=f"rollback to version {target.version}"
        )
