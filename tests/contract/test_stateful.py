"""Stateful runs: schemathesis chains operations through the spec's OpenAPI links."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from nestauth import db
from nestauth.app import HTTP_METHODS, load_spec
from nestauth.models import Base


def test_links_name_real_operations_and_parameters() -> None:
    """openapi-spec-validator does not check that a link's operation exists."""
    spec = load_spec()

    def name(parameter: dict[str, Any]) -> str:
        if "$ref" in parameter:
            parameter = spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        return str(parameter["name"])

    operations = {
        op["operationId"]: {name(p) for p in item.get("parameters", []) + op.get("parameters", [])}
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    }
    for item in spec["paths"].values():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            for response in op["responses"].values():
                for name, link in response.get("links", {}).items():
                    assert link["operationId"] in operations, name
                    assert set(link["parameters"]) <= operations[link["operationId"]], name


def test_linked_flows_conform(asgi_schema: Any, database_url: str) -> None:
    engine = sa.create_engine(db.sync_url(database_url))

    class LinkedFlows(asgi_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # A fresh database per run: hypothesis replays runs and needs them independent.
            with engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())

    try:
        LinkedFlows.run(
            settings=settings(
                max_examples=40,
                stateful_step_count=8,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    finally:
        engine.dispose()
