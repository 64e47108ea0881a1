"""runtime/approval_rules.py: which answers to an approval step count."""

from __future__ import annotations

from airflow_openflow.runtime.approval_rules import approval_rules, refusal

FORM = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}}, "required": ["n"]}


def test_answers_refused_and_accepted() -> None:
    rules = approval_rules(form_schema=FORM, self_approval_disabled=True, approvers=["bob"])

    def check(approver: str, chosen: str, form: dict[str, object]) -> int | None:
        refused = refusal(rules, approver=approver, started_by="alice", chosen=[chosen], form=form)
        return refused[0] if refused else None

    assert check("alice", "Approve", {"n": 1}) == 403  # started the run
    assert check("alice", "Reject", {}) == 403
    assert check("bob", "Approve", {"n": 1}) == 409  # has already approved
    assert check("carol", "Approve", {"n": 9}) == 422  # 9 > maximum
    assert check("carol", "Approve", {}) == 422  # n is required
    assert check("carol", "Approve", {"n": 2}) is None
    assert check("carol", "Reject", {}) is None  # a rejection needs no form
    anyone = approval_rules(form_schema=None, self_approval_disabled=False, approvers=[])
    assert refusal(anyone, approver="alice", started_by="alice", chosen=["Approve"], form={}) is None


def test_group_membership_by_role_roles_or_team() -> None:
    from types import SimpleNamespace

    from airflow_openflow.runtime.approval_rules import group_refusal

    rules = approval_rules(form_schema=None, self_approval_disabled=False, approvers=[], groups=["Finance"])

    def user(**attrs: object) -> object:
        return SimpleNamespace(get_name=lambda: "u", **attrs)

    assert group_refusal(rules, user(role="user"))[0] == 403  # type: ignore[index]
    assert group_refusal(rules, user(role="admin")) is None  # admins may answer any approval
    assert group_refusal(rules, user(role="finance")) is None  # SimpleAuthManager role
    assert group_refusal(rules, user(roles=[SimpleNamespace(name="Finance")])) is None  # FAB roles
    assert group_refusal(rules, user(role="user", teams=["finance"])) is None  # teams
    no_groups = approval_rules(form_schema=None, self_approval_disabled=False, approvers=[])
    assert group_refusal(no_groups, user(role="viewer")) is None
