"""Every ApiError subclass is raised somewhere: a class nobody raises documents a failure
that cannot happen (the framework's own codes live in FRAMEWORK_CODES, not in classes)."""

from __future__ import annotations

import ast
from pathlib import Path

from nestauth import errors

PACKAGE = Path(errors.__file__).parent


def names_used() -> set[str]:
    """Names read anywhere in the package (a class statement defines, it does not read)."""
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.alias):
                used.add(node.name)
    return used


def test_every_error_class_is_used() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.ApiError)
        and value is not errors.ApiError
    }  # fmt: skip
    assert classes - names_used() == set()
