"""The one exception hierarchy of foundry-image-mcp.

```
* FoundryImageError               every expected failure; str() is written for the model and the person
  + ConfigurationError            settings missing or malformed (found at start-up)
  + InvalidInputError             a tool argument we refuse before any upstream call
  + ServiceUnreachableError       could not reach the service: connection refused, DNS, timeout
  + AuthenticationError           could not get a credential, or the service rejected it (401/403)
  + ServiceRefusedError           the service answered with an error status
    - ContentFilteredError        the prompt or the image was blocked by content filtering
    - RateLimitedError            429 / quota
    - NotFoundError               404: agent, version, deployment or response missing
  + UnexpectedResponseError       the service answered something we cannot understand
  + StorageError                  the output directory cannot take the image (read-only, full, no permission)
  + InternalError                 a defect in this server (never expected; the log has the details)
```

Each error carries a short machine `code`, the upstream HTTP `status` and `request_id` when
there is one, the wait the service asked for before a retry (`retry_after`, seconds) when it
said, and a `hint` (what to do next). Secrets never go into any of them.
"""

from __future__ import annotations

from typing import Any


class FoundryImageError(Exception):
    """Base class of every failure the server expects and explains."""

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        upstream_code: str | None = None,
        upstream_param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        self.status = status
        self.request_id = request_id
        self.upstream_code = upstream_code
        self.upstream_param = upstream_param
        self.retry_after = retry_after
        """Seconds the service asked to wait before retrying (Retry-After / retry-after-ms), if it said."""
        self.pending_uri: str | None = None
        """Where the image will appear if the generation this error interrupted still finishes upstream."""

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        """The structured form put into a tool result's `structuredContent`."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "status": self.status,
            "upstream_code": self.upstream_code,
            "request_id": self.request_id,
            "retry_after_seconds": self.retry_after,
            "pending_uri": self.pending_uri,
        }


class ConfigurationError(FoundryImageError):
    code = "configuration"


class InvalidInputError(FoundryImageError):
    code = "invalid_input"


class ServiceUnreachableError(FoundryImageError):
    code = "unreachable"


class AuthenticationError(FoundryImageError):
    code = "authentication"


class ServiceRefusedError(FoundryImageError):
    code = "refused"


class ContentFilteredError(ServiceRefusedError):
    code = "content_filter"


class RateLimitedError(ServiceRefusedError):
    code = "rate_limited"


class NotFoundError(ServiceRefusedError):
    code = "not_found"


class UnexpectedResponseError(FoundryImageError):
    code = "unexpected_response"


class StorageError(FoundryImageError):
    code = "storage"


class InternalError(FoundryImageError):
    code = "internal"
