"""The dashboard tests' shared fixtures (their helpers are in tests/app/helpers.py): the
app served by waitress, and a headless Chromium, each once per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.app.helpers import chromium, serving


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, object]]:
    """The app as `workbench app` serves it (the built-in models): its URL and the app."""
    from app.main import create_app

    app = create_app()
    with serving(app, threads=16) as url:
        yield url, app


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()
