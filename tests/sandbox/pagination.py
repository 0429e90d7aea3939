"""GitHub's pagination: `per_page`/`page` query parameters and a `Link` header.

Clients (gidgethub's `getiter` among them) follow `rel="next"` until it is gone, so the sandbox
paginates every list GitHub paginates, including a list GitHub caps (a pull request's 3,000
files): the last page simply ends at the cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL


@dataclass(frozen=True)
class Page:
    items: list[Any]
    links: str | None
    page: int
    per_page: int


def _int(value: str | None, default: int) -> int:
    """GitHub ignores a malformed number and uses the default."""
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def paginate(
    url: URL,
    query: Mapping[str, str],
    items: Sequence[Any],
    *,
    default_per_page: int = 30,
    max_per_page: int = 100,
    cap: int | None = None,
) -> Page:
    per_page = min(max(_int(query.get("per_page"), default_per_page), 1), max_per_page)
    page = max(_int(query.get("page"), 1), 1)
    if cap is not None:
        items = items[:cap]
    last = max(1, -(-len(items) // per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])
    base = url.with_query({**query, "per_page": str(per_page)})
    links = []
    if page < last:
        links.append(f'<{base.update_query(page=str(page + 1))}>; rel="next"')
        links.append(f'<{base.update_query(page=str(last))}>; rel="last"')
    if page > 1:
        links.append(f'<{base.update_query(page="1")}>; rel="first"')
        links.append(f'<{base.update_query(page=str(min(page - 1, last)))}>; rel="prev"')
    return Page(chunk, ", ".join(links) or None, page, per_page)
