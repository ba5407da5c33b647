"""What every answer says about itself (SPEC 18): no version in ``Server``; console pages
and admin answers may not be framed, sniffed, cached or leak their address.
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

#: The ``Server`` header of every answer: the product, no version to look vulnerabilities
#: up by.
SERVER = "subhook-relay"

#: Scripts, styles and images from the relay itself only (no inline script, no inline
#: style element, no eval); no page may frame the console. ``data:`` images are the icons
#: inside the relay's own stylesheet (Pico's check marks and arrows), no other host.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

PRIVATE = CIMultiDict({
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
})


#: Static files of the console carry their hash in their URL: caching them is right.
_STATIC = "/console/static/"


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer of the app, the errors aiohttp makes of a
    raised HTTPException included (the HTTP layer's own are set in relay.serving)."""
    response.headers["Server"] = SERVER
    path = request.path
    if path.startswith(("/console", "/admin/")):
        response.headers.update(PRIVATE)
        if path.startswith(_STATIC):
            del response.headers["Cache-Control"]
