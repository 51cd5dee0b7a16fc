"""Connexion validators tightened: uuid format, non-UTF-8 and NUL bodies, named parameters."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.utils import is_null, is_nullable
from connexion.validators import (
    VALIDATOR_MAP,
    FormDataValidator,
    JSONRequestBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
)
from jsonschema import Draft4Validator, ValidationError
from starlette.types import Scope


def register_formats() -> None:
    """Connexion's Draft 4 format checker knows no uuid: without this, any id passes."""
    checker = Draft4Validator.FORMAT_CHECKER
    if "uuid" not in checker.checkers:
        checker.checks("uuid", raises=ValueError)(_is_uuid)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True  # type checks are the "type" keyword's business
    return len(value) == 36 and str(uuid.UUID(value)) == value.lower()


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


class StrictJSONBodyValidator(JSONRequestBodyValidator):
    """A body that is not UTF-8, or holds a NUL character, is a 400, not a 500.

    Upstream reads the body outside its own error handling (connexion issue 1860), and
    PostgreSQL text columns cannot store NUL.
    """

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        try:
            text = raw.decode(self._encoding)
        except (UnicodeDecodeError, LookupError):
            raise BadRequestProblem(detail="Request body is not valid UTF-8") from None
        if not text:
            return None
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise BadRequestProblem(detail=f"Request body is not valid JSON: {exc}") from None
        if _contains_nul(body):
            raise BadRequestProblem(detail="Request body must not contain NUL characters")
        return body


class NamingParameterValidator(ParameterValidator):
    """Says which parameter failed, in one line, instead of dumping its schema.

    Upstream deep-copies the parameter and builds a new jsonschema validator for every
    parameter of every request; here each schema's validator is built once.
    """

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            return f"Missing {parameter_type} parameter '{param['name']}'" if param.get(
                "required"
            ) else None  # fmt: skip
        schema = param.get("schema", param)
        try:
            _validator(json.dumps(schema, sort_keys=True)).validate(value)
        except ValidationError as exc:
            first_line = str(exc).strip().splitlines()[0]
            return f"Invalid {parameter_type} parameter '{param.get('name')}': {first_line}"
        return None


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft4Validator:
    """Keyed by the schema's text: the spec's parameter dicts are not hashable."""
    return Draft4Validator(json.loads(schema_json), format_checker=Draft4Validator.FORMAT_CHECKER)


def validator_map() -> dict[str, Any]:
    # Connexion merges this map shallowly: the whole "body" entry must be given.
    return {
        "parameter": NamingParameterValidator,
        "body": MediaTypeDict(
            {
                "*/*json": StrictJSONBodyValidator,
                "application/x-www-form-urlencoded": FormDataValidator,
                "multipart/form-data": MultiPartFormDataValidator,
            }
        ),
        "response": VALIDATOR_MAP["response"],
    }
