"""Error bodies shaped like the ones the Foundry project endpoint returns (protocol §7)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse

INVALID_REQUEST = "invalid_request_error"


class ErrorResponse(JSONResponse):
    """An error answer; `request_id_in_body` when it is Foundry-shaped, whose answers carry no `X-Request-ID`
    (the id is in `additionalInfo.request_id`, protocol §7.5)."""

    request_id_in_body = False


class ApiError(Exception):
    """Raised anywhere in a handler; turned into the JSON error response by the route wrapper."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body.get("error", {}).get("message", "")))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> ErrorResponse:
        response = ErrorResponse(self.body, status_code=self.status, headers=self.headers)
        response.request_id_in_body = "additionalInfo" in (self.body.get("error") or {})
        return response


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


# ---------------------------------------------------------------- content filters and image-tool errors (§4.1, §7.4)

FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read our "
    "documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SAFE = {"filtered": False, "severity": "safe"}


def content_filter_error() -> ApiError:
    """The prompt block in its `innererror` form."""
    severities = {
        "hate": _SAFE,
        "self_harm": _SAFE,
        "sexual": {"filtered": True, "severity": "medium"},
        "violence": {"filtered": True, "severity": "high"},
    }
    body = {
        "error": {
            "message": FILTER_MESSAGE,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": severities},
        }
    }
    return ApiError(400, body)


def filter_results(*, blocked: bool) -> dict[str, Any]:
    """`content_filter_results` of one `content_filters` entry; when `blocked`, a jailbreak was detected."""
    jailbreak = {"detected": blocked, "filtered": blocked}
    return {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE, "jailbreak": jailbreak}


def content_filters_error(prompt_length: int) -> ApiError:
    """The prompt block in its newer form, with a `content_filters` array (§4.1)."""
    entry = {
        "blocked": True,
        "source_type": "prompt",
        "content_filter_results": filter_results(blocked=True),
        "content_filter_offsets": {"start_offset": 0, "end_offset": prompt_length, "check_offset": 0},
    }
    body = {
        "error": {
            "message": FILTER_MESSAGE,
            "type": INVALID_REQUEST,
            "param": "prompt",
            "code": "content_filter",
            "content_filters": [entry],
        }
    }
    return ApiError(400, body)


def moderation_blocked() -> ApiError:
    """An image blocked by the safety system after it was generated (api.openai.com's shape, §4.1)."""
    body = {
        "error": {
            "type": "image_generation_user_error",
            "code": "moderation_blocked",
            "message": "Your request was rejected by the safety system. The generated image may contain content "
            "that is not allowed by our safety system.",
            "param": None,
            "moderation_details": {"moderation_stage": "output", "categories": ["violence"]},
        }
    }
    return ApiError(400, body)


def image_header_missing() -> ApiError:
    """Azure's explicit answer to a call without the image deployment header (§7.4): `type` and `code` swapped."""
    message = "imagegen deployment must be provided through header: x-ms-oai-image-generation-deployment"
    return openai_error(400, INVALID_REQUEST, message, "tools", error_type="image_generation_user_error")


def template_refused() -> ApiError:
    """The recorded refusal of a structured-input placeholder the service will not bind (§3.4)."""
    return invalid_payload("The supplied value is invalid.", "")
