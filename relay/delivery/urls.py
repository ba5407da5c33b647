"""Which destination URLs the delivery client can send to, read as it reads them (its own
URL parser), without the client itself: the config checks them at load."""

from __future__ import annotations

from pyreqwest.http import Url


def url_problem(url: str) -> str | None:
    """Why the delivery client could not send to ``url`` (None when it can): the config
    refuses such a destination rather than letting every delivery to it fail."""
    try:
        Url(url)
    except ValueError as exc:
        return str(exc)
    return None
