"""Browser tests (Playwright and Debian's Chromium); a package so its conftest is not a second
top-level `conftest` module beside tests/conftest.py."""
