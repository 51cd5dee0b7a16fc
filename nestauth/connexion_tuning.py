"""Connexion's per-request work that depends only on names from the spec, done once.

With pythonic_params, Connexion rewrites every parameter name into its Python form with
three regular expressions and inflection, on every request (about 6% of the seed
operation's time in process). The rewrite is a pure function of the name; the cache is
bounded because query-string names come from the client.
"""

from __future__ import annotations

import functools

from connexion.decorators import parameter


def enable() -> None:
    if not hasattr(parameter.pythonic, "cache_info"):
        parameter.pythonic = functools.lru_cache(maxsize=1024)(parameter.pythonic)
