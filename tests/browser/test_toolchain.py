"""The console's front-end toolchain works in a real browser: the vendored htmx, uPlot and
Pico files, read from the installed package and served by aiohttp on 127.0.0.1."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, Request

VENDORED = {
    "vendor/htmx/htmx.min.js": "text/javascript",
    "vendor/uplot/uPlot.iife.min.js": "text/javascript",
    "vendor/uplot/uPlot.min.css": "text/css",
    "vendor/pico/pico.min.css": "text/css",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>toolchain</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/vendor/pico/pico.min.css">
  <link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">
  <script src="/static/vendor/htmx/htmx.min.js"></script>
  <script src="/static/vendor/uplot/uPlot.iife.min.js"></script>
</head>
<body>
  <main class="container">
    <h1>Toolchain</h1>
    <button id="load" hx-get="/fragment" hx-target="#target">Load</button>
    <article id="target">not swapped yet</article>
    <div id="chart"></div>
  </main>
</body>
</html>
"""

# uPlot paints in a microtask after the constructor returns: read the pixels a frame later.
DRAW = """async () => {
    const opts = {width: 600, height: 240, series: [{}, {label: "pushes", stroke: "#1f77b4"}]};
    const data = [[1700000000, 1700000060, 1700000120, 1700000180], [3, 7, 2, 9]];
    new uPlot(opts, data, document.getElementById("chart"));
    await new Promise(resolve => requestAnimationFrame(resolve));
    const canvas = document.querySelector("#chart canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
    return {width: canvas.width, height: canvas.height, painted};
}"""


def toolchain_app(fragment_headers: list[dict[str, str]]) -> web.Application:
    """The test page, one htmx fragment, and the vendored files from the package."""
    static = resources.files("relay.web").joinpath("static")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def fragment(request: web.Request) -> web.Response:
        fragment_headers.append(dict(request.headers))
        return web.Response(text="<p id='swapped'>swapped by htmx</p>", content_type="text/html")

    async def vendored(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in VENDORED:
            raise web.HTTPNotFound
        body = static.joinpath(*name.split("/")).read_bytes()
        return web.Response(body=body, content_type=VENDORED[name])

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/fragment", fragment)
    app.router.add_get("/static/{name:.+}", vendored)
    return app


async def test_htmx_uplot_and_pico_work_in_chromium(page: Page, screenshot: Path) -> None:
    """htmx is defined and swaps an hx-get answer in, uPlot paints a canvas, Pico's styles
    apply, and the page asks no host but the relay for anything."""
    fragment_headers: list[dict[str, str]] = []
    requested: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def on_failed(request: Request) -> None:
        failed.append(f"{request.url}: {request.failure}")

    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", on_failed)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    async with TestServer(toolchain_app(fragment_headers), host="127.0.0.1") as server:
        origin = str(server.make_url("/"))
        answer = await page.goto(origin)
        assert answer is not None and answer.ok

        assert await page.evaluate("typeof htmx") == "object"
        assert str(await page.evaluate("htmx.version")).startswith("2.")

        await page.click("#load")
        await page.wait_for_selector("#target #swapped")
        assert await page.inner_text("#target") == "swapped by htmx"
        assert [h.get("HX-Request") for h in fragment_headers] == ["true"]

        drawn = await page.evaluate(DRAW)
        assert drawn["width"] > 0 and drawn["height"] > 0
        assert drawn["painted"] > 0

        # htmx adds an inline sheet of its own (no href); the two files must have rules.
        sheets = await page.evaluate(
            "Array.from(document.styleSheets, s => [s.href, s.cssRules.length])")
        assert sorted(href.rsplit("/", 1)[-1] for href, rules in sheets if href and rules) == [
            "pico.min.css", "uPlot.min.css"]
        # Pico sets the root's font stack (Chromium's own default is a serif) and its
        # custom properties; uPlot's CSS stacks its cursor layer over the canvas.
        font = await page.evaluate("getComputedStyle(document.documentElement).fontFamily")
        assert font.startswith("system-ui")
        primary = await page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--pico-primary')")
        assert primary.strip()
        over = await page.evaluate(
            "getComputedStyle(document.querySelector('.u-over')).position")
        assert over == "absolute"

        await page.screenshot(path=screenshot, full_page=True)

    assert requested and all(url.startswith(origin) for url in requested), requested
    assert failed == []
    assert errors == []
