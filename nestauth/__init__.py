"""nestauth: an OpenAPI-first authentication server."""
