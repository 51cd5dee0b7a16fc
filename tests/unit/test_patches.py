"""Tripwires for nestauth.patches: each fails when the upstream code a patch relies on
changes, so that a dependency upgrade re-checks the patch instead of breaking it quietly.

When one fails: read the upstream change, re-check the patch (and its upstream issue: it may
be fixed), then record the new fingerprint and version in nestauth/patches.py.
"""

from __future__ import annotations

import inspect
from importlib import metadata

import pytest
from connexion.decorators import parameter
from connexion.json_schema import Draft4RequestValidator
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from connexion.validators.abstract import AbstractRequestBodyValidator
from jsonschema import Draft4Validator

from nestauth import patches, validation

TARGETS = [patch.target for patch in patches.PATCHES]


@pytest.mark.parametrize("target", TARGETS)
def test_patched_upstream_code_is_as_checked(target: str) -> None:
    patch = next(p for p in patches.PATCHES if p.target == target)
    assert patches.fingerprint(target) == patch.fingerprint, (
        f"{target} changed upstream since the patch was checked ({patch.why}); "
        f"upstream: {patch.upstream}"
    )


def test_every_patch_names_its_reason_and_upstream() -> None:
    for patch in patches.PATCHES:
        assert patch.why and patch.upstream, patch.target


@pytest.mark.parametrize("package", list(patches.CHECKED_ON))
def test_installed_versions_are_the_checked_ones(package: str) -> None:
    assert metadata.version(package) in patches.CHECKED_ON[package]


def test_pythonic_is_wrapped_once_and_still_the_same_function() -> None:
    patches.enable()
    patches.enable()
    cached = parameter.pythonic
    assert hasattr(cached, "cache_info")
    assert not hasattr(inspect.unwrap(cached), "cache_info")
    assert inspect.unwrap(cached) is not cached
    assert cached("revokeSessions") == "revoke_sessions"
    assert cached("deviceId") == "device_id"


def test_the_body_hooks_we_override_are_still_called_by_wrap_receive() -> None:
    source = inspect.getsource(AbstractRequestBodyValidator.wrap_receive)
    assert "self._parse(" in source and "self._validate(" in source
    assert list(inspect.signature(JSONRequestBodyValidator._parse).parameters) == [
        "self",
        "stream",
        "scope",
    ]
    assert list(inspect.signature(JSONRequestBodyValidator._validate).parameters) == [
        "self",
        "body",
    ]


def test_the_public_parameter_hooks_keep_their_signatures() -> None:
    assert list(inspect.signature(ParameterValidator.validate_parameter).parameters) == [
        "parameter_type",
        "value",
        "param",
        "param_name",
    ]
    assert list(inspect.signature(ParameterValidator.validate_query_parameter_list).parameters) == [
        "self",
        "request",
        "security_params",
    ]


def test_uuid_is_checked_without_touching_the_process_wide_checker() -> None:
    schema = {"type": "string", "format": "uuid"}
    ours = Draft4RequestValidator(schema, format_checker=validation.FORMAT_CHECKER)
    assert not ours.is_valid("not-a-uuid")
    assert ours.is_valid("6f1c2a52-8d7e-4b7e-9a51-0f3f5d1f2a10")
    # jsonschema's Draft 4 checker has no uuid: if it gains one, ours may be redundant.
    assert "uuid" not in Draft4Validator.FORMAT_CHECKER.checkers
