"""`/docs` (Swagger UI) and `/redoc` from assets shipped in a Python package (fastapi-offline), not from a CDN: the
pages work on a machine without internet. Open, as `/openapi.json` is: Swagger UI's Authorize button takes the key.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["docs"], include_in_schema=False)

ASSETS = files("fastapi_offline") / "static"
# the only files served from the package folder (no path from the request reaches the file system)
MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSETS_PATH = "/docs/assets"
TITLE = "Data Foundation inference API"


def _root(request: Request) -> str:
    return request.scope.get("root_path", "")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    assets = _root(request) + ASSETS_PATH
    return get_swagger_ui_html(
        openapi_url=_root(request) + "/openapi.json",
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},  # no badge from swagger.io
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    assets = _root(request) + ASSETS_PATH
    return get_redoc_html(
        openapi_url=_root(request) + "/openapi.json",
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_PATH + "/{name}")
async def asset(name: str) -> Response:
    if name not in MEDIA_TYPES:
        raise HTTPException(404, f"no docs asset named {name!r}")
    content = (ASSETS / name).read_bytes()
    return Response(content, media_type=MEDIA_TYPES[name], headers={"Cache-Control": "public, max-age=86400"})
