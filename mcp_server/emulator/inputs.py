"""Decoding of the `input` of a Responses request: prompt text, input images and the mask."""

from __future__ import annotations

import base64
import binascii
import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from mcp_server.protocol import MAX_INPUT_IMAGE_URL_CHARS, MAX_PROMPT_CHARS

from .errors import ApiError, invalid_payload, openai_error
from .state import EmulatorState

_DATA_URL = re.compile(r"^data:([^;,]*)(;base64)?,(.*)$", re.DOTALL)
_IMAGE_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF"})
MASK_ERROR_TYPE = "image_generation_user_error"


@dataclass
class ParsedInput:
    prompt: str
    images: list[Image.Image] = field(default_factory=list[Image.Image])
    items: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])


def parse_input(raw: object, state: EmulatorState) -> ParsedInput:
    if raw is None:
        raise openai_error(400, "missing_required_parameter", "Missing required parameter: 'input'.", "input")
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise invalid_payload("input must be a string or an array of input items.", "input")
    texts: list[str] = []
    parsed = ParsedInput(prompt="")
    for index, item in enumerate(raw):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid_payload("Each input item must be an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            parsed.items.append(_message(item, where, texts, parsed.images, state))
        else:
            # Other item kinds (item_reference, image_generation_call, ...) carry no prompt text here.
            parsed.items.append({"id": item.get("id") or _item_id(), **item})
    parsed.prompt = "\n".join(t for t in texts if t)
    if len(parsed.prompt) > MAX_PROMPT_CHARS:
        raise openai_error(
            400,
            "string_above_max_length",
            f"Invalid 'input': string too long. Expected a string with maximum length {MAX_PROMPT_CHARS}, "
            f"but got a string with length {len(parsed.prompt)} instead.",
            "input",
        )
    return parsed


def _item_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _message(
    item: dict[str, Any], where: str, texts: list[str], images: list[Image.Image], state: EmulatorState
) -> dict[str, Any]:
    content = item.get("content")
    role = item.get("role", "user")
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        raise invalid_payload("message content must be a string or an array of content parts.", f"{where}.content")
    for part_index, part in enumerate(content):
        param = f"{where}.content[{part_index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            if role in ("user", "system", "developer"):
                texts.append(part["text"])
        elif kind == "input_image":
            images.append(load_image_ref(part.get("image_url"), part.get("file_id"), state, param))
        elif kind != "input_file":
            raise invalid_payload(f"Unsupported content part type {kind!r}.", f"{param}.type")
    return {
        "id": item.get("id") or _item_id(),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": content,
    }


def load_image_ref(image_url: object, file_id: object, state: EmulatorState, param: str) -> Image.Image:
    if isinstance(file_id, str) and file_id:
        stored = state.get_file(file_id)
        if stored is None:
            raise openai_error(400, "image_file_not_found", f"The file {file_id!r} was not found.", f"{param}.file_id")
        return open_image(stored[1], param)
    if not isinstance(image_url, str) or not image_url:
        raise invalid_payload("input_image needs an 'image_url' or a 'file_id'.", param)
    return open_image(decode_image_url(image_url, f"{param}.image_url"), param)


def decode_image_url(url: str, param: str) -> bytes:
    if len(url) > MAX_INPUT_IMAGE_URL_CHARS:
        raise openai_error(
            400,
            "string_above_max_length",
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{MAX_INPUT_IMAGE_URL_CHARS}, but got a string with length {len(url)} instead.",
            param,
        )
    if url.startswith(("http://", "https://")):
        # The emulator is offline by design: remote images are never fetched.
        raise openai_error(400, "failed_to_download_image", f"Error while downloading {url}.", param)
    match = _DATA_URL.match(url)
    if not match:
        raise openai_error(400, "invalid_image_url", "Expected a base64-encoded data URL or an https URL.", param)
    mime, is_base64, payload = match.groups()
    if not mime.startswith("image/") or not is_base64:
        raise openai_error(
            400, "unsupported_image_media_type", f"Invalid image media type {mime!r}; expected a base64 image.", param
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise openai_error(400, "invalid_base64_image", "Invalid base64 image data in the image URL.", param) from None


def open_image(data: bytes, param: str) -> Image.Image:
    if not data:
        raise openai_error(400, "empty_image_file", "The image file is empty.", param)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        raise openai_error(400, "invalid_image", "The image data is not a valid image.", param) from None
    if image.format not in _IMAGE_FORMATS:
        raise openai_error(400, "invalid_image_format", f"Unsupported image format {image.format}.", param)
    return image


def load_mask(mask: dict[str, Any], state: EmulatorState, first_image: Image.Image | None, param: str) -> Image.Image:
    if first_image is None:
        raise invalid_payload("input_image_mask requires an input image to edit.", param)
    if mask.get("file_id"):
        stored = state.get_file(str(mask["file_id"]))
        if stored is None:
            raise openai_error(400, "image_file_not_found", f"The file {mask['file_id']!r} was not found.", param)
        data = stored[1]
    else:
        data = decode_image_url(str(mask.get("image_url")), f"{param}.image_url")
    image = open_image(data, param)
    if image.format != "PNG" or not _has_alpha(image):
        raise _mask_error("Invalid mask image format - mask image missing alpha channel", param)
    if image.size != first_image.size:
        raise _mask_error(
            f"Invalid mask image size - mask is {image.width}x{image.height} but the image is "
            f"{first_image.width}x{first_image.height}; they must have the same dimensions",
            param,
        )
    return image.convert("RGBA")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _mask_error(message: str, param: str) -> ApiError:
    return openai_error(400, "invalid_mask_image_format", message, param, error_type=MASK_ERROR_TYPE)
