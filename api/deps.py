"""Dependencies of the routes, as ``Annotated`` aliases that tests can override.

``app.dependency_overrides[get_state] = ...`` and friends replace any of them.
They are ``async def`` on purpose: they only read app state (a key lookup hits
the database at most once per key per 10 s), and FastAPI would otherwise run
each sync dependency through the thread pool, several hops per request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from api.auth import KeyVerifier, Principal
from api.errors import ApiProblem
from api.jobs import JobRunner
from api.settings import Settings
from api.state import LoadedModel, ServingState
from recsys.data.store import Store

if TYPE_CHECKING:  # imported where used: both pull in the model libraries
    from fairness.audit import AuditConfig
    from recsys.recommender import RecommenderConfig

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from `clearshelf keys create --role ...`."
)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_state(request: Request) -> ServingState:
    return request.app.state.serving  # type: ignore[no-any-return]


async def get_store(request: Request) -> Store:
    return request.app.state.serving.store  # type: ignore[no-any-return]


async def get_verifier(request: Request) -> KeyVerifier:
    return request.app.state.verifier  # type: ignore[no-any-return]


async def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs  # type: ignore[no-any-return]


async def get_train_config(request: Request) -> RecommenderConfig:
    """The RecommenderConfig POST /admin/train uses: the loaded bundle's own configuration
    (hierarchy columns, sources, seeds), else the defaults; without the text-embedding
    source when ``train_content`` is off. Tests override it with a small one."""
    from recsys.recommender import RecommenderConfig

    settings: Settings = request.app.state.settings
    current: LoadedModel | None = request.app.state.serving.current
    config = current.model.config if current is not None else RecommenderConfig()
    if not settings.train_content:
        config = replace(config, content=None)
    return config


def default_audit_config() -> AuditConfig:
    """The audit POST /admin/audits and the nightly schedule run: with the trade-off sweep
    (the admin preview reads it); the audit model follows the active bundle's configuration.
    No setting changes it: whether the audit model uses the text-embedding source follows
    ``train_content`` and is passed to ``start_audit`` on its own (``without_content``)."""
    from fairness.audit import AuditConfig

    return AuditConfig(sweep=True)


async def get_audit_config() -> AuditConfig:
    return default_audit_config()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StateDep = Annotated[ServingState, Depends(get_state)]
StoreDep = Annotated[Store, Depends(get_store)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]
TrainConfigDep = Annotated[Any, Depends(get_train_config)]
AuditConfigDep = Annotated[Any, Depends(get_audit_config)]


async def current_model(state: StateDep) -> LoadedModel:
    loaded = state.current
    if loaded is None:
        raise ApiProblem(
            503, "No model loaded",
            "no active model is loaded yet: train one (`clearshelf train` or POST /admin/train)",
            slug="no-model",
        )
    return loaded


ModelDep = Annotated[LoadedModel, Depends(current_model)]


def _principal(request: Request, key: str | None, verifier: KeyVerifier) -> Principal | None:
    if not key:
        return None
    principal = verifier.verify(key)
    if principal is None:
        raise ApiProblem(
            401, "Unauthorised",
            "the X-API-Key is unknown or revoked: create one with `clearshelf keys create --role ...`",
            slug="unauthorised", headers={"WWW-Authenticate": "ApiKey"},
        )
    request.scope.setdefault("state", {})["key_id"] = principal.key_id
    return principal


def require_roles(*roles: str) -> Any:
    """A dependency that needs a valid key with one of ``roles`` (401 without a key, 403 with another role)."""

    async def dependency(
        request: Request,
        verifier: Annotated[KeyVerifier, Depends(get_verifier)],
        key: Annotated[str | None, Security(api_key_header)] = None,
    ) -> Principal:
        principal = _principal(request, key, verifier)
        if principal is None:
            raise ApiProblem(
                401, "Unauthorised",
                f"this route needs an API key with role {' or '.join(roles)} in the X-API-Key header",
                slug="unauthorised", headers={"WWW-Authenticate": "ApiKey"},
            )
        if principal.role not in roles:
            raise ApiProblem(
                403, "Forbidden",
                f"key {principal.key_id} has role {principal.role}; this route needs {' or '.join(roles)}",
                slug="forbidden",
            )
        return principal

    return dependency


async def public_access(
    request: Request,
    settings: SettingsDep,
    verifier: Annotated[KeyVerifier, Depends(get_verifier)],
    key: Annotated[str | None, Security(api_key_header)] = None,
) -> Principal | None:
    """Public routes: a key is optional unless ``require_key_public`` is set; a bad key is always 401."""
    principal = _principal(request, key, verifier)
    if principal is None and settings.require_key_public:
        raise ApiProblem(
            401, "Unauthorised",
            "this service requires an API key (any role) in the X-API-Key header on every route",
            slug="unauthorised", headers={"WWW-Authenticate": "ApiKey"},
        )
    return principal


AdminDep = Annotated[Principal, Depends(require_roles("admin"))]
PrivacyDep = Annotated[Principal, Depends(require_roles("privacy", "admin"))]
PublicDep = Annotated[Principal | None, Depends(public_access)]
