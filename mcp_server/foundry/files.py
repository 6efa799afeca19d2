"""Files API: large edit inputs and masks travel as uploads referenced by `file_id`."""

from __future__ import annotations

import uuid
from typing import Final

from mcp_server.foundry.http import AmbiguousRequestError, FoundryHttp, validate_body
from mcp_server.protocol import FileObject

FILES_PATH: Final = "openai/v1/files"
PURPOSE: Final = "assistants"
"""Foundry's samples upload with `assistants`; Azure documented `user_data` as unsupported."""


async def upload_file(http: FoundryHttp, data: bytes, filename: str, mime_type: str) -> str:
    """Upload `data` and return its file id.

    The stored name is made unique, so that when an upload's answer is lost the file can be
    looked up by name instead of uploaded twice.
    """
    unique = f"foundry-image-mcp-{uuid.uuid4().hex[:12]}-{filename}"
    for attempt in (1, 2):
        try:
            body = await http.request_json(
                "POST",
                FILES_PATH,
                files={"file": (unique, data, mime_type)},
                data={"purpose": PURPOSE},
                idempotent=False,
                what=f"upload {filename}",
            )
            return validate_body(FileObject, body, "file object").id
        except AmbiguousRequestError:
            listing = await http.request_json("GET", FILES_PATH, what="look for an uploaded file")
            for item in listing.get("data") or []:
                if isinstance(item, dict) and item.get("filename") == unique and isinstance(item.get("id"), str):
                    return str(item["id"])
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
