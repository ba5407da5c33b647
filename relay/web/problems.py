"""The one JSON error body every refusal carries: ``{"status": "error", "error": code,
"problems": [...]}``."""

from __future__ import annotations

from aiohttp import web


def problem(status: int, code: str, problems: list[str]) -> web.Response:
    return web.json_response({"status": "error", "error": code, "problems": problems},
                             status=status)


def not_allowed(path: str, method: str, allowed: str) -> web.Response:
    """405 naming what the path takes, with ``Allow``."""
    response = problem(405, "method_not_allowed", [f"{path} takes {allowed}, not {method}"])
    response.headers["Allow"] = allowed
    return response
