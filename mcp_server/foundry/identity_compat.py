"""The one place this package reads a private attribute of azure-identity (1.19 to 1.27 at least).

`DefaultAzureCredential` tries a chain of credentials and remembers the one that produced a token
in its private `_successful_credential` (set in `ChainedTokenCredential.__init__`, filled by
`get_token`). `foundry-image-mcp doctor` reads it to name that credential ("from
ManagedIdentityCredential"). `check_credential` runs when the doctor makes its credential and logs
a WARNING when the attribute is gone; `credential_source` then names `DefaultAzureCredential`
itself. tests/test_compat.py fails when an azure-identity upgrade removes the attribute.
"""

from __future__ import annotations

import logging
from typing import Final

logger = logging.getLogger(__name__)

PRIVATE_ATTRIBUTE: Final = "_successful_credential"
DEGRADED: Final = (
    f"The installed azure-identity no longer has DefaultAzureCredential.{PRIVATE_ATTRIBUTE}: "
    "`foundry-image-mcp doctor` names DefaultAzureCredential instead of the credential that produced the token."
)


def names_successful_credential(credential: object) -> bool:
    """Whether `credential` keeps the attribute `credential_source` reads (None until a token is fetched)."""
    return hasattr(credential, PRIVATE_ATTRIBUTE)


def check_credential(credential: object) -> bool:
    """`names_successful_credential`, with a WARNING naming the degraded behaviour when it does not."""
    if names_successful_credential(credential):
        return True
    logger.warning(DEGRADED)
    return False


def credential_source(credential: object) -> str:
    """The class name of the credential in the chain that produced the token, else of `credential` itself."""
    chosen = getattr(credential, PRIVATE_ATTRIBUTE, None)
    return type(chosen).__name__ if chosen is not None else type(credential).__name__
