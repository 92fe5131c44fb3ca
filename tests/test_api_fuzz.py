"""Property-based fuzzing of every operation in /openapi.json (schemathesis): no answer is a 5xx.

Bounded to a few examples per operation so it fits CI; requests carry the admin
key half of the time, so both the auth checks and the routes behind them are hit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.deps import get_audit_config, get_train_config
from api.settings import Settings
from fairness.audit import AuditConfig
from tests.test_api_support import SMALL, World, build_world

MAX_EXAMPLES = 12
_calls = itertools.count()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    home = tmp_path_factory.mktemp("fuzz")
    return build_world(home, f"sqlite:///{home / 'clearshelf.db'}")


# The app object is made here (routes only, nothing loaded) so schemathesis can read its
# schema at collection; the fixture below points it at the test world and runs its
# lifespan. (schemathesis' lazy ``from_fixture`` loader does not run on pytest 9.)
APP: FastAPI = create_app(Settings(rate_limit_per_second=0, audit_time="", log_level="warning"))
APP.dependency_overrides[get_train_config] = lambda: SMALL
APP.dependency_overrides[get_audit_config] = lambda: AuditConfig(sweep=True, recommender=SMALL)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def running_app(world: World) -> Iterator[FastAPI]:
    APP.state.settings = world.settings
    with TestClient(APP):  # runs the lifespan: model loaded, sync loop running
        yield APP


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_operation_answers_5xx(case: Any, world: World) -> None:
    headers = {"X-API-Key": world.admin} if next(_calls) % 2 == 0 else None
    case.call_and_validate(headers=headers, checks=[not_a_server_error])
