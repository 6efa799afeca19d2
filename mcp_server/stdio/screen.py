"""What a line read from stdin is: a message for the SDK, or a refusal JSON-RPC 2.0 says how to answer.

`screen` first parses a line exactly as the SDK's stdio reader does (its message adapter, its flags),
so every message the SDK accepts reaches it as the very object its reader would make. Only a line
the SDK refuses (or takes for a notification although it carries an `"id"`) is looked at again, to
choose the error code and find the request's id:

- -32700 Parse error: not JSON, or JSON the SDK's parser cannot read (nested deeper than it recurses);
  the id, if any, is read by `scan_top_level_id` when the line does not parse at all;
- -32600 Invalid Request: JSON, but not a JSON-RPC 2.0 request (not an object, a batch, no string
  `method`, `jsonrpc` other than "2.0", an id that is neither an integer nor a string);
- -32602 Invalid params: `params` is not an object, or holds a lone surrogate (`"\\ud800"`).

A refusal is answered only when the message had a readable id, or could not be read at all (the
id is then null); a malformed notification or response is only logged, as JSON-RPC 2.0 requires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

from mcp_server.stdio.scan import as_request_id, holds_lone_surrogate, scan_top_level_id

MESSAGES: Final = {PARSE_ERROR: "Parse error", INVALID_REQUEST: "Invalid Request", INVALID_PARAMS: "Invalid params"}
BAD_ID: Final = "id must be an integer or a string"


@dataclass(frozen=True)
class Refusal:
    """A line that cannot be served: the JSON-RPC error for it, and whether it gets one."""

    code: int
    reason: str
    request_id: RequestId | None = None
    answered: bool = True

    def response(self) -> JSONRPCError:
        error = ErrorData(code=self.code, message=MESSAGES[self.code], data=self.reason)
        return JSONRPCError(jsonrpc="2.0", id=self.request_id, error=error)

    def describe(self) -> str:
        return f"{self.code} {MESSAGES[self.code]} ({self.reason}), id {self.request_id!r}"


def screen(line: str) -> JSONRPCMessage | Refusal | None:
    """The SDK's message for `line`, a `Refusal`, or None for a blank line (not a message; ignored)."""
    if not line.strip():
        return None
    try:
        message = jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as exc:  # what the SDK's reader catches; it then drops the line
        return classify(line, parse_failure=_parse_failure(exc))
    if isinstance(message, JSONRPCNotification) and _has_id_member(line):
        # The SDK's union takes {"id": null | 1.5 | true | {...}, "method": ...} for a notification.
        return Refusal(INVALID_REQUEST, BAD_ID)
    return message


def classify(line: str, parse_failure: str | None = None) -> Refusal:
    """Why the SDK refused `line`; `parse_failure` is its JSON parser's complaint, if it had one."""
    try:
        value = json.loads(line.rstrip("\r\n"))  # the same JSON; positions in the complaint stay on line 1
    except RecursionError:
        return Refusal(PARSE_ERROR, "nested too deeply to parse", scan_top_level_id(line))
    except ValueError as exc:
        return Refusal(PARSE_ERROR, f"not JSON: {exc}", scan_top_level_id(line))
    if not isinstance(value, dict):
        return Refusal(INVALID_REQUEST, "batches are not supported" if isinstance(value, list) else "not an object")
    request_id = as_request_id(value.get("id"))
    is_response = "method" not in value and ("result" in value or "error" in value)
    if "id" in value and request_id is None:
        return Refusal(INVALID_REQUEST, BAD_ID, answered=not is_response)
    if is_response:
        return Refusal(INVALID_REQUEST, "a malformed response", request_id, answered=False)
    code, reason = _problem(value, parse_failure)
    return Refusal(code, reason, request_id, answered="id" in value)


def _problem(message: dict[str, Any], parse_failure: str | None) -> tuple[int, str]:
    if message.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, 'jsonrpc must be "2.0"'
    if "method" not in message:
        return INVALID_REQUEST, "method is missing"
    method = message["method"]
    if not isinstance(method, str) or holds_lone_surrogate(method):
        return INVALID_REQUEST, "method must be a string"
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return INVALID_PARAMS, "params must be an object"
    if _holds_lone_surrogate_anywhere(params):
        return INVALID_PARAMS, "params hold a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
    if parse_failure is not None:
        return PARSE_ERROR, parse_failure
    return INVALID_REQUEST, "not a valid JSON-RPC 2.0 message"


def _parse_failure(exc: Exception) -> str | None:
    """The SDK's JSON parser's own complaint ("recursion limit exceeded ..."), if parsing is what failed."""
    if isinstance(exc, ValidationError):
        return next((str(error["msg"]) for error in exc.errors() if error["type"] == "json_invalid"), None)
    return None


def _has_id_member(line: str) -> bool:
    if '"id"' not in line and "\\u" not in line:  # a key spelt with escapes ("\u0069d") is read below too
        return False
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "id" in value


def _holds_lone_surrogate_anywhere(value: object) -> bool:
    """Whether any string in `value` (keys included) holds a lone surrogate; iterative, for deep values."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if holds_lone_surrogate(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
