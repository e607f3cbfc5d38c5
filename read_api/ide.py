"""The pages a browser is shown: GraphiQL at /graphql, Swagger UI at /docs, ReDoc at /redoc.

Each page loads only files packaged under `static/` (fetched once from npm;
each folder's README.txt names them), so it works offline and behind a proxy
that blocks CDNs. A page's files are answered at the page's own address with
`?asset=<name>`: they are open exactly when the page is, by the rules the
permission layer already has for /graphql and for the documentation, and no
route is added that it would have to list.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.requests import Request

from read_api.graphql_guard import GuardedGraphQL

__all__ = ["Assets", "GraphiQLView", "add_documentation_routes"]

STATIC = Path(__file__).with_name("static")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
# The version is in every file's name, so a name always means the same bytes.
CACHED = "public, max-age=31536000, immutable"
BLANK_ICON = "data:,"
"""An empty favicon: FastAPI's pages would fetch theirs from FastAPI's and Redocly's sites."""


class Assets:
    """The scripts and styles of one folder under `static/`, by file name; nothing else."""

    def __init__(self, folder: str) -> None:
        paths = (STATIC / folder).iterdir()
        self.files = {path.name: path for path in paths if path.suffix in MEDIA_TYPES}

    def answer(self, name: str) -> Response:
        path = self.files.get(name)
        if path is None:
            return PlainTextResponse("Not Found", status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": CACHED})

    def url(self, name: str) -> str:
        """Where the page that owns these files asks for one: relative, so it works under any prefix."""
        if name not in self.files:
            raise LookupError(f"no packaged asset {name}")
        return f"?asset={name}"


GRAPHIQL = Assets("graphiql")
GRAPHIQL_PAGE = (STATIC / "graphiql" / "index.html").read_text(encoding="utf-8")
SWAGGER_UI = Assets("swagger-ui")
REDOC = Assets("redoc")


class GraphiQLView(GuardedGraphQL):
    """The guarded GraphQL view whose GraphiQL is the packaged page, with its files beside it."""

    async def render_graphql_ide(self, request: Request) -> Response:
        # A browser asks for a script or a stylesheet accepting */*, which Strawberry reads as
        # asking for the IDE: so the files come here, and only while the IDE is on.
        asset = request.query_params.get("asset")
        if asset is not None:
            return GRAPHIQL.answer(asset)
        return HTMLResponse(GRAPHIQL_PAGE)


def add_documentation_routes(api: FastAPI) -> None:
    """/docs, /docs/oauth2-redirect and /redoc over the packaged files; the app is built without FastAPI's."""
    title, openapi = api.title, api.openapi_url or "/openapi.json"

    def prefixed(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + path

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request, asset: str | None = None) -> Response:
        if asset is not None:
            return SWAGGER_UI.answer(asset)
        return get_swagger_ui_html(
            openapi_url=prefixed(request, openapi), title=f"{title} - Swagger UI",
            swagger_js_url=SWAGGER_UI.url("swagger-ui-bundle-5.35.0.js"),
            swagger_css_url=SWAGGER_UI.url("swagger-ui-5.35.0.css"), swagger_favicon_url=BLANK_ICON,
            oauth2_redirect_url=prefixed(request, "/docs/oauth2-redirect"),
            # Without it, Swagger UI may show a badge drawn by validator.swagger.io.
            swagger_ui_parameters={**(api.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @api.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @api.get("/redoc", include_in_schema=False)
    async def redoc(request: Request, asset: str | None = None) -> Response:
        if asset is not None:
            return REDOC.answer(asset)
        page = get_redoc_html(
            openapi_url=prefixed(request, openapi), title=f"{title} - ReDoc",
            redoc_js_url=REDOC.url("redoc-2.5.4.standalone.js"), redoc_favicon_url=BLANK_ICON,
            with_google_fonts=False,
        )
        # ReDoc draws its maker's logo from the maker's site, and hides it when that fails: fail it here.
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

