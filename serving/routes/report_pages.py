"""`GET /reports/`: the case-study walkthrough pages that `mlops report` builds.

The pages are static, self-contained HTML files in `MLOPS_HOME/reports/pages/`; this
router only lists and reads them (the API never imports the plotting or training code
that builds them). A page is named by a plain file name, checked against a pattern and
resolved inside the folder, so no request can read anything else; a missing page is a
404 in the API's error shape.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse

from serving.errors import PageNotFound, error_responses

# Bounded well below a file system's 255-byte name limit: a longer name is no page, not
# an OSError.
PAGE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}\.html$")
_TITLE: Final = re.compile(rb"<title>(.*?)</title>", re.DOTALL)

router = APIRouter(prefix="/reports", tags=["reports"])
# `mlops report churn` (and `mlops demo`) writes the churn page under this name.
_CHURN_PAGE = {"summary": "The churn walkthrough", "value": "churn.html"}
PageName = Annotated[str, PathParameter(openapi_examples={"churn": _CHURN_PAGE})]


def _pages_dir(request: Request) -> Path:
    folder: Path = request.app.state.settings.report_pages_dir
    return folder


@router.get("/", response_class=HTMLResponse)
def pages_index(request: Request) -> HTMLResponse:
    """The walkthrough pages built so far, newest build first."""
    folder = _pages_dir(request)
    pages = sorted(_readable_pages(folder), key=lambda page: page[1], reverse=True)
    items = "".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(title)}</a> '
        f"<small>built {datetime.fromtimestamp(mtime, UTC):%Y-%m-%d %H:%M} UTC"
        f"</small></li>"
        for p, mtime, title in pages
    )
    body = (
        f"<ul>{items}</ul>"
        if items
        else "<p>No page built yet: run <code>mlops report churn</code> or "
        "<code>mlops report fraud</code> (<code>mlops demo</code> builds both).</p>"
    )
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Case-study walkthroughs</title><style>body{font:15px/1.5 system-ui,sans-serif;"
        "max-width:50em;margin:2em auto;padding:0 1em}small{color:#666}</style></head><body>"
        f"<h1>Case-study walkthroughs</h1>{body}</body></html>"
    )


@router.get("/{page}", response_class=HTMLResponse, responses=error_responses(PageNotFound))
def page(page: PageName, request: Request) -> HTMLResponse:
    """One walkthrough page, as `mlops report` wrote it."""
    folder = _pages_dir(request)
    if not PAGE_NAME.match(page):
        # Not quoted back: it may be anything up to the URL's limit.
        raise PageNotFound("no page of this name: the index is /reports/")
    not_found = PageNotFound(f"no page {page!r}: the index is /reports/")
    path = folder / page
    try:
        if path.resolve().parent != folder.resolve():
            raise not_found
        content = path.read_bytes()
    except OSError:
        # Missing, a dangling symlink, unreadable: no page to give, whatever the reason.
        raise not_found from None
    return HTMLResponse(content)


def _readable_pages(folder: Path) -> list[tuple[Path, float, str]]:
    """The folder's pages with their build time and title; an entry that cannot be read
    (a dangling symlink, a page removed meanwhile) is left out, not an error."""
    if not folder.is_dir():
        return []
    pages = []
    for path in folder.glob("*.html"):
        if not PAGE_NAME.match(path.name):
            continue
        try:
            pages.append((path, path.stat().st_mtime, _title(path)))
        except OSError:
            continue
    return pages


def _title(path: Path) -> str:
    with path.open("rb") as handle:
        found = _TITLE.search(handle.read(4096))
    return found.group(1).decode("utf-8", "replace") if found else path.stem


def add_report_page_routes(app: FastAPI) -> None:
    """Add `GET /reports/` and `GET /reports/{page}` to `app`, as an included router."""
    app.include_router(router)
