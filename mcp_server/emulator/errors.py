"""Error bodies shaped like the ones the Foundry project endpoint returns (protocol §7)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """Raised anywhere in a handler; turned into the JSON error response by the route wrapper."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body.get("error", {}).get("message", "")))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _request_id() -> str:
    return uuid.uuid4().hex


def foundry_error(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    *,
    details: list[dict[str, Any]] | None = None,
    error_type: str = INVALID_REQUEST,
) -> ApiError:
    """The Foundry data-plane shape, with `details` and `additionalInfo.request_id`."""
    return ApiError(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "param": param,
                "type": error_type,
                "details": details or [],
                "additionalInfo": {"request_id": _request_id()},
            }
        },
    )


def invalid_payload(message: str, param: str | None = None) -> ApiError:
    return foundry_error(400, "invalid_payload", message, param)


def multi_invalid_payload(problems: list[tuple[str, str]]) -> ApiError:
    """Several validation problems at once: the top-level message is generic, each one is a detail."""
    if len(problems) == 1:
        message, param = problems[0]
        return invalid_payload(message, param)
    details = [{"code": "ValidationError", "message": m, "param": p, "type": "error"} for m, p in problems]
    return foundry_error(400, "invalid_payload", "Invalid payload", None, details=details)


def not_found(message: str, param: str | None = None) -> ApiError:
    return foundry_error(404, "not_found", message, param)


def openai_error(
    status: int, code: str | None, message: str, param: str | None = None, error_type: str = INVALID_REQUEST
) -> ApiError:
    """The plain OpenAI shape, which the Responses image pipeline uses for input problems."""
    return ApiError(status, {"error": {"message": message, "type": error_type, "param": param, "code": code}})


def unauthorized() -> ApiError:
    return ApiError(
        401,
        {
            "error": {
                "code": "PermissionDenied",
                "message": "Access denied due to missing or invalid authentication credentials. "
                "Send 'Authorization: Bearer <token>' for scope https://ai.azure.com/.default.",
                "type": INVALID_REQUEST,
                "param": None,
            }
        },
        headers={"www-authenticate": 'Bearer realm="emulator"'},
    )


def generic_bad_request() -> ApiError:
    # Verbatim from a real Azure reply to a responses call without the image deployment header.
    return openai_error(400, None, "There was an issue with your request. Please check your inputs and try again")


def deployment_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        {
            "error": {
                "code": "DeploymentNotFound",
                "message": f"The API deployment for this resource does not exist. If you created the deployment "
                f"within the last 5 minutes, please wait a moment and try again. (deployment: {name!r})",
                "param": None,
                "type": INVALID_REQUEST,
            }
        },
    )
