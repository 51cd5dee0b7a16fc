"""What a valid request is beyond the spec's schemas, and how a refusal is worded.

JSON bodies are parsed strictly (UTF-8, no NaN/Infinity, I-JSON number range, no duplicate
keys, bounded nesting, no NUL); ids are checked as uuids; messages name the field and the
rule, never the value sent (a too-long password or a token would otherwise come back in the
response and land in logs).
"""

from __future__ import annotations

import copy
import json
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any

from connexion.exceptions import BadRequestProblem, UnsupportedMediaTypeProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.utils import is_null, is_nullable
from connexion.validators import ParameterValidator
from jsonschema import Draft4Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match

# Deeper documents are refused before they are parsed: the stdlib parser, jsonschema and
# json.dumps all recurse, and a 64 KB body can nest 30,000 levels.
MAX_DEPTH = 32
# I-JSON (RFC 7493, 2.2): integers beyond this lose precision in most JSON parsers; the
# digit count is checked before int() so Python's 4300-digit conversion limit never fires.
MAX_SAFE_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))
# Strings (possibly unterminated, so that no match ever fails and rescans) and brackets.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True  # type checks are the "type" keyword's business
    return len(value) == 36 and str(uuid.UUID(value)) == value.lower()


# Draft 4 knows no uuid format: without this, any id passes. A copy, so that the process-wide
# Draft 4 checker (other libraries' too) stays as jsonschema ships it.
FORMAT_CHECKER: FormatChecker = copy.deepcopy(Draft4Validator.FORMAT_CHECKER)
FORMAT_CHECKER.checks("uuid", raises=ValueError)(_is_uuid)


class InvalidBody(ValueError):
    """A body that is well-formed enough to read but not acceptable JSON input."""


def parse_json_body(raw: bytes, charset: str) -> Any:
    """The body as JSON, or a 400 naming what is wrong with it.

    JSON is UTF-8 (RFC 8259, 8.1), and only UTF-8: the handler re-reads the raw bytes as
    UTF-8, so a body checked under another declared charset was not the body it received
    (latin-1 let an encoded lone surrogate through to a 500).
    """
    if charset.lower().replace("-", "").replace("_", "") != "utf8":
        raise UnsupportedMediaTypeProblem(detail="Content-Type: charset must be utf-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestProblem(detail="body: not valid UTF-8") from None
    if not text:
        return None
    try:
        if nesting_depth(text) > MAX_DEPTH:
            raise InvalidBody(f"nested deeper than {MAX_DEPTH} levels")
        body = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_safe_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        detail = f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise BadRequestProblem(detail=detail) from None
    except InvalidBody as exc:
        raise BadRequestProblem(detail=f"body: {exc}") from None
    if _has_unstorable_text(body):
        raise BadRequestProblem(detail="body: text must not contain NUL or lone surrogates")
    return body


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest, brackets inside strings aside; linear time."""
    depth = deepest = 0
    for token in _TOKENS.findall(text):
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _refuse_constant(_name: str) -> Any:
    raise InvalidBody("NaN and Infinity are not JSON numbers")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidBody("a number is out of range")
    return value


def _safe_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS or abs(int(text)) > MAX_SAFE_INTEGER:
        raise InvalidBody("an integer is out of range")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        raise InvalidBody("an object has a duplicate key")
    return body


def _has_unstorable_text(value: Any) -> bool:
    """PostgreSQL text cannot hold NUL, and a lone surrogate (a "\\ud800" escape) cannot be
    encoded at all: both were 500s. Recursion is bounded by MAX_DEPTH."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_unstorable_text(k) or _has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable_text(v) for v in value)
    return False


# --- messages ------------------------------------------------------------------------------


def first_error(validator: Draft4Validator, instance: Any) -> ValidationError | None:
    """The most telling error (jsonschema's own ranking), or None when the instance is valid."""
    return best_match(validator.iter_errors(instance))


def describe(error: ValidationError, subject: str = "body") -> str:
    """'field: rule', e.g. 'password: longer than 128 characters'.

    Built from the error's path, keyword and the schema's value for it; jsonschema's own
    message quotes the instance, which is what the client sent.
    """
    names, rule = _names_and_rule(error)
    if subject != "body":
        return f"{subject}{_render(names, leading_dot=True)}: {rule}"
    return f"{_render(names) or subject}: {rule}"


def _names_and_rule(error: ValidationError) -> tuple[list[str | int], str]:
    names: list[str | int] = list(error.absolute_path)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "required":
        missing = [name for name in expected if name not in instance]
        return [*names, *missing[:1]], "required"
    if keyword == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        unknown = [name for name in instance if name not in known]
        return [*names, *unknown[:1]], "not a known field"
    return names, _rule(str(keyword), expected)


def _rule(keyword: str, expected: Any) -> str:
    if keyword == "type":
        return f"must be {_types(expected)}"
    if keyword in ("minLength", "minItems", "minProperties") and expected == 1:
        return "must not be empty"
    rules = {
        "maxLength": "longer than {} characters",
        "minLength": "shorter than {} characters",
        "maximum": "greater than {}",
        "minimum": "less than {}",
        "maxItems": "more than {} items",
        "minItems": "fewer than {} items",
        "maxProperties": "more than {} fields",
        "minProperties": "fewer than {} fields",
        "format": "not a valid {}",
        "pattern": "not in the expected format",
        "propertyNames": "has a field name that is not allowed",
        "uniqueItems": "items must be unique",
        "oneOf": "does not match exactly one allowed form",
        "anyOf": "does not match any allowed form",
        "not": "is not allowed",
    }
    if keyword in rules:
        return rules[keyword].format(expected)
    if keyword == "enum":
        return "must be one of " + ", ".join(json.dumps(value) for value in expected)
    if keyword == "const":
        return f"must be {json.dumps(expected)}"
    return f"breaks the '{keyword}' rule"


def _types(expected: str | Iterable[str]) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    articles = {"integer": "an integer", "object": "an object", "array": "an array"}
    words = [articles.get(name, "null" if name == "null" else f"a {name}") for name in names]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _render(names: Iterable[str | int], leading_dot: bool = False) -> str:
    """A path such as metadata.team or items[3]; a client-chosen key that is not a plain
    name is shown as '*' (it is data, and may be long or hold control characters)."""
    text = ""
    for name in names:
        if isinstance(name, int):
            text += f"[{name}]"
        else:
            shown = name if _PLAIN_NAME.fullmatch(name) else "*"
            text += f".{shown}" if text or leading_dot else shown
    return text


def plain_name(name: str) -> str:
    return repr(name) if _PLAIN_NAME.fullmatch(name) else "(name not shown)"


# By identity: Connexion attaches the spec's whole components section to every body schema,
# so keying by the schema's text cost a serialisation of the spec per request. The schemas
# are the spec's own long-lived dicts; the bound guards against any built per request.
_VALIDATORS: dict[int, tuple[dict[str, Any], Draft4Validator]] = {}


def schema_validator(schema: dict[str, Any]) -> Draft4Validator:
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_VALIDATORS) >= 1024:
            _VALIDATORS.clear()
        entry = (schema, Draft4RequestValidator(schema, format_checker=FORMAT_CHECKER))
        _VALIDATORS[id(schema)] = entry
    return entry[1]


class NamingParameterValidator(ParameterValidator):
    """Says which parameter failed and by which rule, in one line, without its value.

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
        error = first_error(schema_validator(param.get("schema", param)), value)
        if error is None:
            return None
        return describe(error, subject=f"{parameter_type} parameter '{param.get('name')}'")

    def validate_query_parameter_list(
        self, request: Any, security_params: list[str] | None = None
    ) -> set[str]:
        """Upstream's message lists every unknown name: a long query string came back whole."""
        unknown = super().validate_query_parameter_list(request, security_params)
        if unknown:
            name = plain_name(sorted(unknown)[0])
            raise BadRequestProblem(detail=f"query parameter {name}: not a known parameter")
        return unknown
