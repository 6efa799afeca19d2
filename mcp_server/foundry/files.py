"""Files API: large edit inputs and masks travel as uploads referenced by `file_id`."""

from __future__ import annotations

from typing import Final

from mcp_server.foundry.http import FoundryHttp, validate_body
from mcp_server.protocol import FileObject

FILES_PATH: Final = "openai/v1/files"
PURPOSE: Final = "assistants"
"""Foundry's samples upload with `assistants`; Azure documented `user_data` as unsupported."""


async def upload_file(http: FoundryHttp, data: bytes, filename: str, mime_type: str) -> str:
    """Upload `data` and return its file id."""
    body = await http.request_json(
        "POST",
        FILES_PATH,
        files={"file": (filename, data, mime_type)},
        data={"purpose": PURPOSE},
        what=f"upload {filename}",
    )
    return validate_body(FileObject, body, "file object").id
