"""Every place nestauth reaches into a dependency's internals, in one module.

Each entry of PATCHES names what it overrides or wraps, why, the upstream issue, the versions
it was checked on, and a fingerprint of the upstream source it relies on;
tests/unit/test_patches.py fails when that source changes, so an upgrade is re-checked here
instead of breaking quietly. (The spec is OpenAPI 3.0.3, which Connexion loads as it is: no
document-check patch.)

What is not a patch stays outside: the parameter validator (nestauth.validation) overrides
ParameterValidator's public methods and is handed over through `validator_map`, Connexion's
public extension point; so are the classes below.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.decorators import parameter
from connexion.exceptions import BadRequestProblem, UnsupportedMediaTypeProblem
from connexion.json_schema import Draft4ResponseValidator
from connexion.validators import (
    VALIDATOR_MAP,
    FormDataValidator,
    JSONRequestBodyValidator,
    JSONResponseBodyValidator,
    MultiPartFormDataValidator,
)
from jsonschema import Draft4Validator
from starlette.datastructures import Headers
from starlette.types import Receive, Scope

from nestauth import validation

log = logging.getLogger("nestauth.patches")

CHECKED_ON = {"connexion": ("3.3.0",), "jsonschema": ("4.26.0",)}


@dataclass(frozen=True)
class Patch:
    target: str  # module:qualname of the upstream code we override, wrap or rely on
    why: str
    upstream: str
    fingerprint: str  # sha256 of the target's source, first 16 hex digits, when checked


PATCHES = (
    Patch(
        target="connexion.decorators.parameter:pythonic",
        why="wrapped in an LRU cache: three regexes per parameter name per request",
        upstream="none found (searched spec-first/connexion issues: pythonic_params cost)",
        fingerprint="70c5c689dec99744",
    ),
    Patch(
        target="connexion.decorators.parameter:BaseParameterDecorator.__init__",
        why="reads the module-level pythonic when an operation is built: enable() must run "
        "before add_api",
        upstream="none (relied upon)",
        fingerprint="a2ab5462f60aa23a",
    ),
    Patch(
        target="connexion.validators.json:JSONRequestBodyValidator._parse",
        why="replaced: the body is decoded outside the validator's try (non-UTF-8 is a 500), "
        "NaN/Infinity, huge numbers, duplicate keys, NUL and deep nesting are accepted",
        upstream="https://github.com/spec-first/connexion/issues/1860",
        fingerprint="653b0d4025a2592e",
    ),
    Patch(
        target="connexion.validators.json:JSONRequestBodyValidator._validate",
        why="replaced: its message and its INFO log line quote the value sent",
        upstream="none found (searched spec-first/connexion issues: validation message value)",
        fingerprint="273956bb6cb6dd4e",
    ),
    Patch(
        target="connexion.validators.abstract:AbstractRequestBodyValidator.wrap_receive",
        why="extended: calls _parse/_validate; a body without Content-Type reaches it "
        "(guessed as JSON) but the handler then gets bytes, so it is refused first",
        upstream="https://github.com/spec-first/connexion/issues/1860",
        fingerprint="44c469448a6e46fb",
    ),
    Patch(
        target="connexion.middleware.request_validation:"
        "RequestValidationOperation.extract_content_type",
        why="relied upon: a missing Content-Type is guessed as the operation's first media "
        "type, so the JSON body validator sees bodies sent without one",
        upstream="https://github.com/spec-first/connexion/issues/1860",
        fingerprint="b08fa016a712fc41",
    ),
    Patch(
        target="connexion.validators.json:JSONResponseBodyValidator.validator",
        why="overridden: Connexion validates with the process-wide Draft 4 format checker, "
        "which knows no uuid; ours has one (validation.FORMAT_CHECKER)",
        upstream="https://github.com/python-jsonschema/jsonschema/issues/737 (no uuid "
        "format before 2019-09)",
        fingerprint="27ff813d631a179b",
    ),
)


def resolve(target: str) -> Any:
    module_name, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    if isinstance(found, property):
        found = found.fget
    return inspect.unwrap(found)


def fingerprint(target: str) -> str:
    source = inspect.getsource(resolve(target))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def enable() -> None:
    """Applies the one monkeypatch; call before `add_api`. Idempotent."""
    for package, versions in CHECKED_ON.items():
        if metadata.version(package) not in versions:
            log.warning(
                "nestauth.patches were checked on %s %s, not %s: run tests/unit/test_patches.py",
                package, "/".join(versions), metadata.version(package),
            )  # fmt: skip
    if not hasattr(parameter.pythonic, "cache_info"):
        # A pure function of a name; bounded because query-string names come from clients.
        parameter.pythonic = functools.lru_cache(maxsize=1024)(parameter.pythonic)


class StrictJSONBodyValidator(JSONRequestBodyValidator):
    """Connexion's JSON body validator with nestauth's parsing and messages."""

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        headers = Headers(scope=scope)
        if "content-type" not in headers and headers.get("content-length", "0") != "0":
            raise UnsupportedMediaTypeProblem(detail="Content-Type: must be application/json")
        return await super().wrap_receive(receive, scope=scope)

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        return validation.parse_json_body(raw, self._encoding)

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="body: required")
        error = validation.first_error(validation.schema_validator(self._schema), body)
        if error is not None:
            raise BadRequestProblem(detail=validation.describe(error))
        return None


class UuidAwareResponseValidator(JSONResponseBodyValidator):
    @property
    def validator(self) -> Draft4Validator:
        checked: Draft4Validator = Draft4ResponseValidator(
            self._schema, format_checker=validation.FORMAT_CHECKER
        )
        return checked


def validator_map() -> dict[str, Any]:
    # Connexion merges this map shallowly: each entry must be given whole.
    return {
        "parameter": validation.NamingParameterValidator,
        "body": MediaTypeDict(
            {
                "*/*json": StrictJSONBodyValidator,
                "application/x-www-form-urlencoded": FormDataValidator,
                "multipart/form-data": MultiPartFormDataValidator,
            }
        ),
        "response": MediaTypeDict(
            {**VALIDATOR_MAP["response"], "*/*json": UuidAwareResponseValidator}
        ),
    }
