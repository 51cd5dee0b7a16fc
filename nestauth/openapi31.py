"""Lets Connexion 3.3 load an OpenAPI 3.1 document.

Connexion checks every document against the 3.0 meta-schema, so `openapi: 3.1.0` is refused
before routing starts (spec-first/connexion#1396, fix proposed in #1951, unmerged). Its
routing, parameter handling and Draft 4 validators work on the 3.1 subset this spec uses
(type lists for null, `const`, `examples`); only the document check is wrong. This replaces
that check, for 3.1 documents only, with openapi-spec-validator's 3.1 validator.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import InvalidSpecification
from connexion.spec import OpenAPISpecification
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

_connexion_check = OpenAPISpecification._validate_spec


def _validate_spec(cls: type, spec: dict[str, Any]) -> None:
    if not str(spec.get("openapi", "")).startswith("3.1"):
        _connexion_check.__func__(cls, spec)  # type: ignore[attr-defined]
        return
    try:
        OpenAPIV31SpecValidator(spec).validate()
    except OpenAPIValidationError as exc:
        raise InvalidSpecification(str(exc).splitlines()[0]) from exc


def enable() -> None:
    OpenAPISpecification._validate_spec = classmethod(_validate_spec)  # type: ignore[assignment,method-assign]
