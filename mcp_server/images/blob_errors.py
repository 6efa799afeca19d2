"""What a storage account's refusal means, in a few words and with what to do: `StoreWriteError`s for writes,
`OSError`s (as the local store's files raise) for reads. Messages are built from the status and the
service's error code only, never from the exception text, so they never carry a key, a token or a SAS."""

from __future__ import annotations

from typing import Final

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)

from mcp_server.images.base import StoreWriteError

PERMISSION: Final = "permission"
CREDENTIALS: Final = "credentials"
CONTAINER: Final = "container"
NETWORK: Final = "network"
BUSY: Final = "busy"
REFUSED: Final = "refused"

ROLE_FIX: Final = "the identity needs the Storage Blob Data Contributor role on the account"
PERMISSION_CODES: Final = frozenset(
    {"AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch"}
)
"""403s that mean: authenticated, but this identity (or SAS) may not do this."""
LEASE_LOST_CODES: Final = frozenset(
    {
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseIdMismatchWithBlobOperation",
        "LeaseIdMissing",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseNotPresentWithBlobOperation",
        "LeaseLost",
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseAlreadyPresent",
        "BlobNotFound",
    }
)


class BlobStoreError(StoreWriteError):
    """A `StoreWriteError` that also says which kind of failure it was (`PERMISSION`, `CONTAINER`...)."""

    def __init__(self, reason: str, *, kind: str, transient: bool) -> None:
        super().__init__(reason, transient=transient)
        self.kind = kind


def error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def is_container_missing(exc: BaseException) -> bool:
    return error_code(exc) == "ContainerNotFound"


def is_lease_lost(exc: BaseException) -> bool:
    """Whether a lease operation (or a write carrying the lease id) failed because the lease is not ours."""
    return error_code(exc) in LEASE_LOST_CODES or status_of(exc) in (404, 409, 412)


def classify(exc: AzureError, container: str) -> BlobStoreError:
    """The error to raise for `exc`, which the service (or the way to it) answered about `container`."""
    status, code = status_of(exc), error_code(exc)
    said = f"HTTP {status} {code}".strip() if status else type(exc).__name__
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return BlobStoreError(
            "no Microsoft Entra ID credential for the storage account (run az login, or configure a managed "
            "identity or a service principal)",
            kind=CREDENTIALS,
            transient=False,
        )
    if status is None or isinstance(exc, ServiceRequestError | ServiceResponseError):
        return BlobStoreError(
            f"cannot reach the storage account ({said}): check the account URL and the account's firewall",
            kind=NETWORK,
            transient=True,
        )
    if status == 403 and code in PERMISSION_CODES:
        return BlobStoreError(f"the storage account refused ({said}): {ROLE_FIX}", kind=PERMISSION, transient=False)
    if status in (401, 403):
        return BlobStoreError(
            f"the storage account refused the credentials ({said}): check the account key of the connection string, "
            "or the account's firewall and network rules",
            kind=CREDENTIALS,
            transient=False,
        )
    if code == "ContainerNotFound":
        return BlobStoreError(
            f"the storage account has no container {container} ({said})", kind=CONTAINER, transient=False
        )
    if status == 429 or (status is not None and status >= 500) or code in ("ServerBusy", "OperationTimedOut"):
        return BlobStoreError(f"the storage account is busy or failing ({said})", kind=BUSY, transient=True)
    return BlobStoreError(f"the storage account refused ({said})", kind=REFUSED, transient=False)


def read_error(exc: AzureError, container: str) -> OSError:
    """The `OSError` a read raises for `exc`: what the local store's files raise in the same case."""
    error = classify(exc, container)
    kinds: dict[str, type[OSError]] = {
        PERMISSION: PermissionError,
        CREDENTIALS: PermissionError,
        CONTAINER: FileNotFoundError,
        NETWORK: ConnectionError,
    }
    return kinds.get(error.kind, OSError)(error.reason)
