"""GraphiQL, the API docs and the dashboard load nothing from outside their server, and are on where meant."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app, create_health_app
from tests.api_harness import RowsReadModel, api_client
from tests.tokens import requiring_tokens

STATIC = Path(__file__).resolve().parents[2] / "read_api" / "static"
URL = re.compile(r"""(?:https?:)?//[^\s'"`<>()\\$]+""")
"""An absolute or protocol-relative URL written in a page's markup or inline script, up to any `${`."""
MEDIA_TYPE = {"script": "text/javascript", "stylesheet": "text/css"}
HTML = {"Accept": "text/html"}
GRAPHIQL_FILE = "/graphql?asset=graphiql-3.8.3.min.js"


class Page(HTMLParser):
    """What a page refers to: (tag or rel, URL) of each src and href, and the text of its inline scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.references: list[tuple[str, str]] = []
        self.inline: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        kind = found.get("rel") or tag
        self.references += [(kind, value) for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script" and "src" not in found

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def foreign(page_url: str, urls: list[str]) -> list[str]:
    """The URLs among `urls` (relative ones read against the page) that leave the page's origin."""
    origin = urlsplit(page_url)[:2]
    resolved = (urljoin(page_url, url) for url in urls)
    return [url for url in resolved if not url.startswith("data:") and urlsplit(url)[:2] != origin]


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as built:
        yield built


@pytest.mark.parametrize("path", ["/graphql", "/docs", "/redoc", "/dashboard"])
async def test_a_page_for_the_browser_loads_only_files_its_own_server_answers(
    system: System, path: str,
) -> None:
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    async with api_client(app) as client:
        response = await client.get(path, headers=HTML)
        page = Page(response.text)
        local = [(kind, urljoin(str(response.url), url)) for kind, url in page.references
                 if not url.startswith("data:")]
        files = [(kind, await client.get(url, headers={"Accept": "*/*"})) for kind, url in local]

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    # A script may name its own server as location.host (the dashboard's WebSocket does).
    scripts = [text.replace("${location.host}", response.url.netloc.decode()) for text in page.inline]
    written = [url for _, url in page.references] + [url for text in scripts for url in URL.findall(text)]
    assert foreign(str(response.url), written) == []
    for kind, answer in files:
        assert answer.status_code == 200, (kind, answer.url)
        assert answer.headers["content-type"].startswith(MEDIA_TYPE[kind]), (kind, answer.url)
    if path == "/graphql":
        assert {kind for kind, _ in files} == {"script", "stylesheet"}
        assert "GraphiQL.createFetcher" in response.text and "subscriptionUrl" in response.text


async def test_a_workers_docs_load_only_files_its_own_server_answers() -> None:
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    async with api_client(create_health_app("payments", ready)) as client:
        response = await client.get("/docs", headers=HTML)
        page = Page(response.text)
        scripts = [await client.get(urljoin(str(response.url), url)) for kind, url in page.references
                   if kind == "script"]

    assert response.status_code == 200
    assert foreign(str(response.url), [url for _, url in page.references]) == []
    assert scripts and all(script.status_code == 200 for script in scripts)


async def test_only_the_files_of_a_page_are_answered_beside_it(system: System) -> None:
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    async with api_client(app) as client:
        answers = [await client.get(f"/graphql?asset={name}") for name in
                   ("index.html", "README.txt", "../ide.py", "swagger-ui-5.35.0.css", "nothing.js")]
        swagger = await client.get("/docs?asset=graphiql-3.8.3.min.css")

    assert [answer.status_code for answer in answers] == [404] * 5 and swagger.status_code == 404
    assert "GraphiQL" not in answers[0].text


@pytest.mark.parametrize("introspection", [None, False, True])
async def test_in_required_mode_graphiql_and_the_docs_are_on_only_with_introspection(
    system: System, introspection: bool | None,
) -> None:
    settings = requiring_tokens(system.settings, graphql_introspection=introspection)
    app = create_app(system=system, read_model=RowsReadModel(), settings=settings)
    async with api_client(app) as client:
        pages = [await client.get(path, headers=HTML) for path in ("/graphql", "/docs", "/redoc")]
        files = [await client.get(path) for path in (GRAPHIQL_FILE, "/docs?asset=swagger-ui-5.35.0.css")]

    answered = [answer.status_code for answer in pages + files]
    if introspection:
        assert answered == [200] * 5
    else:
        assert answered == [404, 403, 403, 404, 403]
        assert all("GraphiQL" not in answer.text for answer in pages + files)


@pytest.mark.parametrize("folder", sorted(path.name for path in STATIC.iterdir() if path.is_dir()))
def test_each_packaged_file_is_the_one_its_readme_names(folder: str) -> None:
    readme = (STATIC / folder / "README.txt").read_text(encoding="utf-8")
    named = dict(re.findall(r"^(\S+)\s.*\n\s+([0-9a-f]{64})$", readme, flags=re.MULTILINE))
    ours = {"README.txt", "index.html"}
    shipped = {path.name: path for path in (STATIC / folder).iterdir() if path.name not in ours}

    assert set(named) == set(shipped)
    for name, path in shipped.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == named[name], name
