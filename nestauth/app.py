"""The application factory: the spec routes requests, the lifespan owns the engine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml
from connexion import AsyncApp
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions

from nestauth import db, patches
from nestauth.config import Settings
from nestauth.context import Runtime
from nestauth.errors import KnownRoutes, register_error_handlers
from nestauth.flood_guard import FloodGuardMiddleware
from nestauth.metrics import Metrics
from nestauth.middleware import (
    BodySizeLimitMiddleware,
    SecurityHeadersMiddleware,
    ThreadedReadsMiddleware,
    TransactionMiddleware,
    TrustedProxiesMiddleware,
)
from nestauth.models import ADMIN_ROLES
from nestauth.observability import OperationTagMiddleware, RequestLogMiddleware
from nestauth.services import housekeeping, passwords
from nestauth.services.secrets import SecretBox

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "openapi.yaml"
# Swagger UI's page with its initializer in a file, so the page's CSP needs no inline script.
SWAGGER_UI_DIR = Path(__file__).resolve().parent / "swagger_ui"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


class SpecError(ValueError):
    """The spec asks for something the server does not have; the message names where."""


def roles_by_operation(spec: dict[str, Any]) -> dict[str, str]:
    """The minimum admin role each operation declares in `x-nestauth-min-role`, keyed as
    Connexion names the operation at run time (router controller + operationId).

    An unknown role is refused here, at start-up: at request time it could only be a 500.
    """
    for operation in _operations(spec):
        role = operation.get("x-nestauth-min-role", ADMIN_ROLES[0])
        if role not in ADMIN_ROLES:
            raise SpecError(
                f"operation {operation.get('operationId')!r}: x-nestauth-min-role {role!r}"
                f" is not one of {', '.join(ADMIN_ROLES)}"
            )
    return {
        _resolved_operation_id(operation): operation["x-nestauth-min-role"]
        for operation in _operations(spec)
        if "x-nestauth-min-role" in operation
    }


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path_item in spec["paths"].values()
        for method, operation in path_item.items()
        if method in HTTP_METHODS
    ]


def _methods_by_path(spec: dict[str, Any]) -> dict[str, set[str]]:
    return {path: set(item) & set(HTTP_METHODS) for path, item in spec["paths"].items()}


def _resolved_operation_id(operation: dict[str, Any]) -> str:
    controller = operation.get("x-openapi-router-controller")
    return f"{controller}.{operation['operationId']}" if controller else operation["operationId"]


def create_app(settings: Settings | None = None, spec_path: Path = SPEC_PATH) -> AsyncApp:
    settings = settings or Settings.from_env()
    spec = load_spec(spec_path)
    SecretBox.for_settings(settings)  # no server key, no start (ConfigError names it)
    runtime = Runtime(
        settings=settings,
        roles_by_operation=roles_by_operation(spec),
        setup_token_operations=frozenset(
            _resolved_operation_id(op)
            for op in _operations(spec)
            if op.get("x-nestauth-setup-token")
        ),
        threaded_read_operations=threaded_read_operations(spec),
    )
    passwords.use_profile(settings.password_hash_profile)
    patches.enable()
    metrics = Metrics(runtime)
    app = AsyncApp(__name__, lifespan=_lifespan(runtime, metrics))
    app.add_api(
        spec,
        strict_validation=True,
        validate_responses=settings.validate_responses,
        pythonic_params=True,
        validator_map=patches.validator_map(),
        swagger_ui_options=SwaggerUIOptions(
            swagger_ui_path="/auth/docs", swagger_ui_template_dir=str(SWAGGER_UI_DIR)
        ),
    )
    # Inserted in this order, each before Connexion's exception middleware (the first added is
    # outermost): the headers wrap every response, the /metrics, 413 and 503 answers the inner
    # ones send themselves included; the request log sees the client address the trusted proxy
    # named, and every answer of the layers inside it.
    app.add_middleware(
        SecurityHeadersMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, runtime=runtime
    )
    app.add_middleware(
        TrustedProxiesMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, runtime=runtime
    )
    app.add_middleware(
        RequestLogMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        runtime=runtime,
        metrics=metrics,
    )
    # A flood's refusals answered before routing, validation and a transaction (flood_guard).
    app.add_middleware(
        FloodGuardMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, runtime=runtime
    )
    app.add_middleware(OperationTagMiddleware, position=MiddlewarePosition.BEFORE_SECURITY)
    app.add_middleware(
        BodySizeLimitMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        max_bytes=settings.max_body_bytes,
    )
    app.add_middleware(
        TransactionMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, runtime=runtime
    )
    app.add_middleware(  # after routing: it needs the operation
        ThreadedReadsMiddleware, position=MiddlewarePosition.BEFORE_SECURITY, runtime=runtime
    )
    register_error_handlers(app, KnownRoutes(_methods_by_path(spec)))
    app.runtime = runtime  # type: ignore[attr-defined]  # for the CLI and tests
    app.metrics = metrics  # type: ignore[attr-defined]  # for tests
    return app


def _lifespan(runtime: Runtime, metrics: Metrics) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        runtime.engine = db.create_engine(runtime.settings.database_url, runtime.settings)
        runtime.sessions = db.session_factory(runtime.engine)
        await _open_read_engines(runtime)
        # What is loaded by now (the spec, its validators, the mappings) lives as long as
        # the process: out of the collector's sight, a full collection no longer walks it
        # in the middle of a request.
        gc.collect()
        gc.freeze()
        pruning = asyncio.create_task(
            housekeeping.prune_periodically(runtime, metrics.count_pruned)
        )
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await runtime.engine.dispose()
            for read_engine in (runtime.read_engine, runtime.threaded_read_engine):
                if read_engine is not None:
                    await read_engine.dispose()
            runtime.engine = runtime.sessions = None
            runtime.read_engine = runtime.threaded_read_engine = runtime.read_sessions = None

    return lifespan


async def _open_read_engines(runtime: Runtime) -> None:
    """SQLite: GET requests read off the write lock (nestauth.db); none on PostgreSQL."""
    url, settings = runtime.settings.database_url, runtime.settings
    runtime.read_engine = db.create_inline_read_engine(url, settings)
    runtime.threaded_read_engine = db.create_read_engine(url, settings)
    if runtime.read_engine is not None and runtime.threaded_read_engine is not None:
        assert runtime.engine is not None
        runtime.read_sessions = db.session_factory(
            runtime.engine, runtime.read_engine, runtime.threaded_read_engine
        )


def threaded_read_operations(spec: dict[str, Any]) -> frozenset[str]:
    """The lists and searches (GET operations taking `limit`): their reads may be long, so
    on SQLite they run in worker threads rather than on the event loop."""

    def takes_limit(operation: dict[str, Any]) -> bool:
        return any(
            parameter.get("name") == "limit"
            or parameter.get("$ref", "").rsplit("/", 1)[-1].lower() == "limit"
            for parameter in operation.get("parameters", [])
        )

    return frozenset(
        _resolved_operation_id(operation)
        for path_item in spec["paths"].values()
        if (operation := path_item.get("get")) is not None and takes_limit(operation)
    )
