"""The injected faults that answer with an error status without processing the request (see `faults`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mcp_server.protocol import IMAGE_DEPLOYMENT_HEADER

from .errors import (
    INVALID_REQUEST,
    ApiError,
    content_filter_error,
    content_filters_error,
    deployment_not_found,
    foundry_error,
    image_header_missing,
    invalid_payload,
    moderation_blocked,
)
from .fault_names import PROCESSED_FILTERS

RATE_LIMIT_MESSAGE: Final = (
    "Requests to the Responses API have exceeded the rate limit of your current pricing tier. "
    "Please retry after 1 second."
)
LONG_RATE_LIMIT_MESSAGE: Final = (
    "Requests to the Responses API have exceeded the token rate limit of your current pricing tier. "
    "Please retry after 120 seconds."
)
PREVIEW_MESSAGE: Final = (
    "Workflow agents is in preview. This operation requires the following opt-in preview feature(s): "
    "WorkflowAgents=V1Preview. Include the 'Foundry-Features: WorkflowAgents=V1Preview' header in your request."
)
RATE_LIMIT_HEADERS: Final = {
    "retry-after": "1",
    "retry-after-ms": "100",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-remaining-tokens": "0",
}
LONG_RATE_LIMIT_HEADERS: Final = {
    "retry-after": "120",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-remaining-tokens": "0",
}
_SERVER_ERRORS = {
    "500": (500, "server_error", "The server had an error while processing your request. Sorry about that!"),
    "502": (502, "bad_gateway", "The upstream service returned an invalid response. Please retry."),
    "503": (503, "service_unavailable", "The service is temporarily unavailable. Please retry after 1 second."),
}

_SIMPLE_ERRORS: dict[str, Callable[[], ApiError]] = {
    "filter-400-array": lambda: content_filters_error(64),
    "moderation-blocked": moderation_blocked,
    "image-header-missing": image_header_missing,
    "agent-field": lambda: invalid_payload("Not allowed when agent is specified.", "tools"),
}


def is_responses_create(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/").endswith("/responses")


def _rate_limited(fault: str) -> ApiError:
    message = LONG_RATE_LIMIT_MESSAGE if fault == "429-long" else RATE_LIMIT_MESSAGE
    body = {"error": {"code": "rate_limit_exceeded", "message": message, "type": "requests", "param": None}}
    headers = {"429": RATE_LIMIT_HEADERS, "429-long": LONG_RATE_LIMIT_HEADERS}.get(fault)
    return ApiError(429, body, dict(headers) if headers is not None else None)


def _expired_token() -> ApiError:
    body = {
        "error": {
            "code": "ExpiredAuthenticationToken",
            "message": "Lifetime validation failed, the token is expired.",
            "type": INVALID_REQUEST,
            "param": None,
        }
    }
    return ApiError(401, body, {"www-authenticate": 'Bearer error="invalid_token"'})


def error_for(fault: str, method: str, path: str, headers: dict[str, str]) -> ApiError | None:
    """The error that answers `fault` without processing the request, or None for faults that are not errors."""
    if fault in ("429", "429-bare", "429-long"):
        return _rate_limited(fault)
    if fault in _SERVER_ERRORS:
        status, code, message = _SERVER_ERRORS[fault]
        error = foundry_error(status, code, message, None, error_type="server_error")
        if fault == "503":
            error.headers["retry-after"] = "1"
        return error
    if fault == "filter-400" or (fault in PROCESSED_FILTERS and not is_responses_create(method, path)):
        return content_filter_error()
    simple = _SIMPLE_ERRORS.get(fault)
    if simple is not None:
        return simple()
    if fault == "token-expired":
        return _expired_token()
    if fault == "forbidden-preview":
        return foundry_error(403, "preview_feature_required", PREVIEW_MESSAGE, "Foundry-Features")
    if fault == "deployment-missing":
        return deployment_not_found(headers.get(IMAGE_DEPLOYMENT_HEADER, "").strip() or "gpt-image-1")
    return None
