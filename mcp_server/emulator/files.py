"""The OpenAI-compatible Files routes of the project endpoint (protocol §1.4)."""

from __future__ import annotations

import mimetypes
import time
import uuid

from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

from mcp_server.protocol import FileObject

from .context import Ctx
from .errors import invalid_payload, openai_error

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def _file(ctx: Ctx) -> tuple[FileObject, bytes]:
    file_id = ctx.params["file_id"]
    stored = ctx.state.get_file(file_id)
    if stored is None:
        raise openai_error(404, "not_found", f"No such File object: {file_id}", "file_id")
    return stored


async def upload(ctx: Ctx) -> Response:
    if "multipart/form-data" not in ctx.headers.get("content-type", ""):
        raise invalid_payload("Files must be uploaded as multipart/form-data.", "file")
    async with ctx.request.form(max_part_size=512 * 1024 * 1024) as form:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise invalid_payload("Missing required parameter: 'file'.", "file")
        if purpose not in PURPOSES:
            raise invalid_payload(f"Invalid purpose {purpose!r}. Expected one of: {', '.join(PURPOSES)}.", "purpose")
        content = await upload.read()
        filename = upload.filename or "upload"
    file = FileObject(
        id="assistant-" + uuid.uuid4().hex,
        bytes=len(content),
        created_at=int(time.time()),
        filename=filename,
        purpose=str(purpose),
    )
    ctx.state.put_file(file, content)
    return JSONResponse(file.to_wire())


async def list_files(ctx: Ctx) -> Response:
    purpose = ctx.query.get("purpose")
    data = [f.to_wire() for f, _ in ctx.state.files.values() if purpose is None or f.purpose == purpose]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }
    )


async def retrieve(ctx: Ctx) -> Response:
    return JSONResponse(_file(ctx)[0].to_wire())


async def delete(ctx: Ctx) -> Response:
    file, _ = _file(ctx)
    ctx.state.delete_file(file.id)
    return JSONResponse({"id": file.id, "object": "file", "deleted": True})


async def content(ctx: Ctx) -> Response:
    file, data = _file(ctx)
    media_type = mimetypes.guess_type(file.filename)[0] or "application/octet-stream"
    return Response(data, media_type=media_type)
