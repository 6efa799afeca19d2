"""The doctor's `deployments` check: which deployments the server will use, their models, and retirement.

The deployments are found exactly as the server finds them at its first call
(`mcp_server.service.deployments`). The row is:

- `FAIL` when they cannot be found (several or no deployments fit, a name given is not in the project,
  or the deployments API refused and a name is missing), or when the image model is retired;
- `WARN` when the image model retires within `RETIREMENT_WARNING_DAYS`, or when the deployments API
  refused, so that the models could not be checked. A warning does not change the exit status;
- `PASS` otherwise.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from mcp_server.cli.doctor_table import DEPLOYMENTS, FAIL, PASS, WARN, Row
from mcp_server.config import IMAGE_VAR
from mcp_server.errors import FoundryImageError
from mcp_server.protocol import REPLACEMENTS, retirement_notice, rules_for
from mcp_server.service.deployments import DeploymentResolver, ResolvedDeployments

RETIREMENT_WARNING_DAYS: Final = 60
REFUSED_FIX: Final = (
    "Give this identity read access to the project's deployments (the Azure AI User role includes it) so the "
    "models can be checked; the server works with the names given meanwhile."
)


async def check_deployments(resolver: DeploymentResolver, today: date) -> tuple[Row, ResolvedDeployments | None]:
    """The `deployments` row, and the deployments found (None when they could not be)."""
    try:
        resolved = await resolver.resolve()
    except FoundryImageError as exc:
        return Row(DEPLOYMENTS, FAIL, exc.message, exc.hint or ""), None
    return deployments_row(resolved, today), resolved


def deployments_row(resolved: ResolvedDeployments, today: date) -> Row:
    detail = f"image {resolved.image.shown()}, orchestrator {resolved.orchestrator.shown()}"
    if resolved.refused is not None:
        why = f"the deployments API refused (HTTP {resolved.refused.status}), so the models are not checked"
        return Row(DEPLOYMENTS, WARN, f"{detail}; {why}", REFUSED_FIX)
    model = resolved.image_model
    retires = rules_for(model).retires
    if retires is None:
        return Row(DEPLOYMENTS, PASS, detail)
    notice = retirement_notice(model, today)
    if notice is not None:
        return Row(DEPLOYMENTS, FAIL, f"{detail}; {model} was retired on {retires.isoformat()}", _fix(notice, resolved))
    left = (retires - today).days
    if left <= RETIREMENT_WARNING_DAYS:
        instead = [family for family in REPLACEMENTS if not _retires_by(family, retires + timedelta(days=1))]
        advice = f"deploy {' or '.join(instead[:2]) or 'a current image model'}"
        return Row(
            DEPLOYMENTS,
            WARN,
            f"{detail}; {model} retires on {retires.isoformat()}, in {left} days",
            _fix(f"{model} retires on {retires.isoformat()}; {advice}", resolved),
        )
    return Row(DEPLOYMENTS, PASS, f"{detail}; {model} retires on {retires.isoformat()}")


def _retires_by(family: str, day: date) -> bool:
    return rules_for(family).retired(day)


def _fix(notice: str, resolved: ResolvedDeployments) -> str:
    """What to do about an image model that is (about to be) retired."""
    then = (
        f"then set {IMAGE_VAR} to the new deployment"
        if resolved.image.how == "given"
        else f"then delete {resolved.image_deployment} (the one image deployment left is found) or set {IMAGE_VAR}"
    )
    return f"{notice}, {then}."
