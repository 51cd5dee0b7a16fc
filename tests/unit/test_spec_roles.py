"""A role in the spec that the server does not know stops start-up, naming the operation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nestauth.app import SPEC_PATH, SpecError, create_app, load_spec
from tests.support import make_settings


def broken_copy(tmp_path: Path, operation_id: str, role: str) -> Path:
    spec = load_spec()
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                operation["x-nestauth-min-role"] = role
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


@pytest.mark.parametrize("role", ["admn", "Owner", "superuser", ""])
def test_create_app_refuses_an_unknown_role(tmp_path: Path, role: str) -> None:
    spec_path = broken_copy(tmp_path, "list_users", role)
    with pytest.raises(SpecError) as caught:
        create_app(make_settings(f"sqlite:///{tmp_path}/x.db"), spec_path=spec_path)
    message = str(caught.value)
    assert "list_users" in message and repr(role) in message
    assert "viewer" in message and "\n" not in message


def test_the_shipped_spec_starts(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path}/x.db"), spec_path=SPEC_PATH)
    assert set(app.runtime.roles_by_operation.values()) <= {"viewer", "admin", "owner"}
