"""Cursor paging as the Foundry list operations do it: `limit`, `order`, and `after`/`before` naming an item id."""

from __future__ import annotations

from typing import Any

from .context import Ctx
from .errors import invalid_payload

MAX_LIMIT = 100


def page(ctx: Ctx, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """One page of `items` (given oldest first), as `{"object":"list","data",...,"has_more"}`; newest first by
    default."""
    order = ctx.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_payload("order must be 'asc' or 'desc'.", "order")
    try:
        limit = int(ctx.query.get("limit", "20"))
    except ValueError:
        raise invalid_payload("limit must be an integer.", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_payload(f"limit must be between 1 and {MAX_LIMIT}.", "limit")
    ordered = items if order == "asc" else list(reversed(items))
    ids = [item[key] for item in ordered]
    if "after" in ctx.query:
        cursor = ctx.query["after"]
        ordered = ordered[ids.index(cursor) + 1 :] if cursor in ids else []
    if "before" in ctx.query:
        cursor = ctx.query["before"]
        ids = [item[key] for item in ordered]
        ordered = ordered[: ids.index(cursor)] if cursor in ids else []
    chosen = ordered[:limit]
    return {
        "object": "list",
        "data": chosen,
        "first_id": chosen[0][key] if chosen else None,
        "last_id": chosen[-1][key] if chosen else None,
        "has_more": len(ordered) > limit,
    }
