"""Who may answer an approval step and with what: one set of rules for the approval task (which
does not count a refused answer) and the approvals endpoint (which refuses it with a status code).
No Airflow imports: both sides call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: XCom key of the approval task holding its rules and the approvers so far, for the endpoint.
RULES_KEY = "openflow_approval_rules"
REJECT = "Reject"
#: The only user an approval with ``user_groups_required`` is assigned to in Airflow: nobody, so
#: Airflow's own endpoint refuses every answer (403) and the OpenFlow endpoint, which can check
#: group membership, records them.
GROUPS_ONLY_USER = {"id": "openflow:user_groups_required", "name": "members of the required groups"}


def approval_rules(
    *,
    form_schema: Mapping[str, Any] | None,
    self_approval_disabled: bool,
    approvers: list[str],
    user_auth_required: bool = False,
    groups: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "form_schema": dict(form_schema) if form_schema else None,
        "self_approval_disabled": self_approval_disabled,
        "user_auth_required": user_auth_required,
        "groups": list(groups or []),
        "approvers": list(approvers),
    }


def user_groups(user: Any) -> set[str]:
    """The groups an Airflow user is in, lower-cased: its role (SimpleAuthManager) or roles (FAB),
    and its teams."""
    names: set[str] = set()
    role = getattr(user, "role", None)
    if role:
        names.add(str(getattr(role, "value", role)))
    names.update(str(getattr(r, "name", r)) for r in (getattr(user, "roles", None) or []))
    names.update(str(getattr(t, "name", t)) for t in (getattr(user, "teams", None) or []))
    return {name.lower() for name in names}


def group_refusal(rules: Mapping[str, Any], user: Any) -> tuple[int, str] | None:
    """403 when the approval requires groups and the user is in none of them (admins may answer)."""
    required = [str(g) for g in rules.get("groups") or []]
    if not required:
        return None
    mine = user_groups(user)
    if "admin" in mine or mine & {g.lower() for g in required}:
        return None
    name = user.get_name() if hasattr(user, "get_name") else str(user)
    return 403, f"{name} is in none of the groups this approval requires: {', '.join(required)}"


def refusal(
    rules: Mapping[str, Any],
    *,
    approver: str,
    started_by: str | None,
    chosen: list[str],
    form: Any,
) -> tuple[int, str] | None:
    """(HTTP status, message) when this answer may not count, else None."""
    if rules.get("self_approval_disabled") and started_by and approver == started_by:
        return 403, f"{approver} started this run and may not answer its approval (self_approval_disabled)"
    if REJECT in chosen:
        return None
    if approver in (rules.get("approvers") or []):
        return 409, f"{approver} has already approved; an approval counts once per user"
    problem = form_problem(rules.get("form_schema"), form)
    if problem is not None:
        return 422, f"the form does not match resume_form.schema: {problem}"
    return None


def form_problem(schema: Mapping[str, Any] | None, payload: Any) -> str | None:
    """Why a form payload violates the schema, or None."""
    if not schema:
        return None
    import jsonschema

    try:
        jsonschema.validate(payload, dict(schema))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{where + ': ' if where else ''}{exc.message}"
    return None
