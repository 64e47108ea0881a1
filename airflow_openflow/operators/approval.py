"""``suspend`` on a step: an approval task on Airflow's human-in-the-loop operator.

Approvers use Airflow's own "Required Actions" page or its REST API
(``PATCH .../taskInstances/<task>/-1/hitlDetails``). The task waits in ``awaiting_input`` (no
worker slot). One HITL task instance takes one response, so ``required_events: N`` is collected in
rounds on the same task instance: after each accepted approval the request is opened again, until N
distinct users have approved. Windmill's rules (spec 6.2): a rejection fails the step with
``SuspendedDisapproved``, a timeout with ``SuspendedTimedOut``, unless
``continue_on_disapprove_timeout``; the next step sees ``resume``, ``resumes`` and ``approvers``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from airflow.providers.standard.operators.hitl import HITLOperator

from airflow_openflow.compat.operators import drop_inherited_params
from airflow_openflow.runtime.approval_rules import (
    GROUPS_ONLY_USER,
    REJECT,
    RULES_KEY,
    approval_rules,
    refusal,
)
from airflow_openflow.runtime.log_text import json_preview
from airflow_openflow.runtime.plan import OUTCOME_KEY, RESUME_KEY, StepPlan
from airflow_openflow.runtime.resume_links import PAYLOAD_KEY
from airflow_openflow.spec.model import FlowModule

APPROVE = "Approve"
#: Windmill's default wait for an approval (spec 6.1).
DEFAULT_TIMEOUT_S = 1800
#: At most this many characters of the step's result (as JSON) in the request's body.
RESULT_PREVIEW_CHARS = 2000
#: At most this many characters of a loop iteration's item (as JSON) in the request's subject.
ITEM_PREVIEW_CHARS = 60
#: XCom keys of the approval task's own progress across its rounds (kept while it waits; a fresh
#: try, after a clear, starts without them and so asks again).
_APPROVALS_KEY = "openflow_approvals"
_DEADLINE_KEY = "openflow_approval_deadline"
_TIMED_OUT = ("SuspendedTimedOut", "Timed out waiting to be resumed")


class StepApprovalOperator(HITLOperator):
    """Waits for the approvals a step's ``suspend`` asks for, then lets the flow go on.

    The task ``<step>_approval``, after the step: an Airflow human-in-the-loop request that waits
    in ``awaiting_input`` (no worker slot). In a loop iteration it is mapped with the iteration
    (one request per iteration, its subject naming the iteration), in a branch on tasks it is in
    the branch's group (compile/body.py). Approvers answer on Airflow's "Required Actions" page,
    through its REST API, through the OpenFlow approvals endpoint or with a signed resume link.
    ``required_events`` approvals from different users are collected in rounds on the same task
    instance. Each answer is checked against the step's rules (``self_approval_disabled``,
    ``user_auth_required``, ``user_groups_required``, the ``resume_form`` schema); an answer that
    breaks them does not count. A rejection or the timeout fails the step (``SuspendedDisapproved``,
    ``SuspendedTimedOut``) unless ``continue_on_disapprove_timeout``. The next step sees
    ``resume``, ``resumes`` and ``approvers`` (XCom ``openflow_resume``); the task's own
    ``return_value`` is the step's result, passed on. A step that did not run has nothing to
    approve: the task ends at once.

    Everything the request needs comes from the step and its ``suspend``: the subject and body
    (the step and the flow by their summaries; the body adds a preview of the step's result and a
    link to its log, as Windmill's approval page shows them; not Jinja templates), the options
    (Approve, and Reject unless ``hide_cancel``), the timeout (``suspend.timeout``, else
    Windmill's 1800 s). Other keyword arguments go to ``HITLOperator`` and ``BaseOperator``.

    :param module: The step that carries the ``suspend`` (``spec.model.FlowModule``).
    :param plan: A plan whose ``step_id`` is that step (``runtime.plan.StepPlan``): the task reads
        its outcome and result, and evaluates ``user_groups_required`` with its result.
    :param form_params: The ``resume_form.schema`` as Airflow ``Param``s: the fields of the
        approval form, and its only fields (never the DAG's params, the flow's trigger form). They
        are the request's params, not the task's (see ``_open_request``); each answer is checked
        against the schema here.
    :param flow_name: The flow's display name (its summary, else its path) and
    :param step_name: the step's (its summary, else its id), for the request's subject and body.
    :param step_task_id: The step's task (its id with the task group's prefix in a loop iteration
        or a branch on tasks); default: the plan's ``step_id``.
    :param iteration: In a loop iteration: the item (mapped with the iteration, as the body's
        steps are); the request names the iteration's index and value. None elsewhere.
    :param in_body: Whether the step is in a loop iteration or a branch on tasks, whose body ends
        with this task: a continued error stays one once approved (runtime/outcomes.py).
    """

    ui_color = "#fbe6c2"
    # The subject and body quote the document's summaries and the step's result: never Jinja.
    # Only the iteration's item is resolved (per map index, from the loop's items).
    template_fields: Sequence[str] = ("iteration",)

    def __init__(
        self,
        *,
        module: FlowModule,
        plan: StepPlan,
        form_params: Mapping[str, Any],
        flow_name: str = "",
        step_name: str = "",
        step_task_id: str | None = None,
        iteration: Any = None,
        in_body: bool = False,
        **kwargs: Any,
    ):
        suspend = module.suspend
        assert suspend is not None
        self.module = module
        self.plan = plan
        self.step_task_id = step_task_id or plan.step_id
        self.iteration = iteration
        self.in_body = in_body
        form = (suspend.resume_form or {}).get("schema")
        self.form_schema = dict(form) if isinstance(form, Mapping) else None
        self.required = max(1, suspend.required_events)
        self.timeout_s = float(suspend.timeout or DEFAULT_TIMEOUT_S)
        self.continue_on_disapprove_timeout = suspend.continue_on_disapprove_timeout
        self.self_approval_disabled = suspend.self_approval_disabled
        self.user_auth_required = suspend.user_auth_required
        self.groups: list[str] = []  # user_groups_required, evaluated when the task starts
        # The DAG's params (the flow's schema), which Airflow passes every operator as `params`:
        # the form is form_params, so they must not reach HITLOperator a second time.
        drop_inherited_params(kwargs)
        self.flow_name = flow_name or plan.flow.dag_id
        self.step_name = step_name or module.summary or module.id
        needed = "one approval" if self.required == 1 else f"{self.required} approvals from different users"
        self.intro = (
            f"Step **{self.step_name}** (`{module.id}`) of flow **{self.flow_name}** has run; "
            f"{'its loop iteration or branch' if in_body else 'the flow'} waits for {needed} before it"
            f" goes on (at most {self.timeout_s:g} s)."
            + (
                ""
                if suspend.hide_cancel
                else _after_rejection(suspend.continue_on_disapprove_timeout, in_body)
            )
        )
        super().__init__(
            subject=f"Approve “{self.step_name}” of flow “{self.flow_name}”",
            body=self.intro,
            options=[APPROVE] if suspend.hide_cancel else [APPROVE, REJECT],
            params=dict(form_params),  # resume_form.schema as Airflow Params (the form's widgets)
            response_timeout=datetime.timedelta(seconds=self.timeout_s),
            **kwargs,
        )
        self.step_subject = self.subject
        # The form is put on the request when it opens (_open_request), not kept as the task's
        # params: a task starts by validating its run's conf against its params
        # ([core] dag_run_conf_overrides_params), so a flow input named like a form field but of
        # another type would fail the task before anyone is asked. This also keeps the DAG's
        # params off the form where HITLOperator keeps them (a Task SDK without
        # ParamsDict.filter_params_by_source).
        self.form_params: dict[str, Any] = dict(form_params)
        for name in list(self.params):
            del self.params[name]

    def execute(self, context: Any) -> Any:
        from airflow_openflow.runtime.outcomes import OutcomeKind, outcome_kind

        ti = context["ti"]
        step_kind = outcome_kind(_pull(ti, self.step_task_id, OUTCOME_KEY))
        if step_kind is OutcomeKind.CONTAINER_ENDED:
            # Its iteration or branch ended before the step (or the branch was not chosen).
            from airflow.sdk.exceptions import AirflowSkipException

            ti.xcom_push(key=OUTCOME_KEY, value=OutcomeKind.CONTAINER_ENDED.value)
            raise AirflowSkipException(f"step {self.plan.step_id} did not run: no approval needed")
        if step_kind not in (OutcomeKind.SUCCESS, OutcomeKind.MOCKED, OutcomeKind.CONTINUED_ERROR):
            # A skipped step does not suspend the flow: nothing to approve.
            self.log.info("step %s did not run (%s): no approval needed", self.plan.step_id, step_kind)
            ti.xcom_push(key=OUTCOME_KEY, value=OutcomeKind.SKIPPED.value)
            return self._step_result(ti)
        self.groups = self._required_groups(context)
        if self.groups:
            self.assigned_users = [GROUPS_ONLY_USER]  # see approval_rules.GROUPS_ONLY_USER
        deadline = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=self.timeout_s)
        ti.xcom_push(key=_DEADLINE_KEY, value=deadline.timestamp())
        self._record(ti, [])
        return self._open_request(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        ti = context["ti"]
        # A resumed task is a new process: the groups evaluated by the first round are in its rules.
        self.groups = list((_pull(ti, self.task_id, RULES_KEY) or {}).get("groups") or [])
        if self.groups:
            self.assigned_users = [GROUPS_ONLY_USER]
        if "error" in event:
            if event.get("error_type") == "timeout":
                return self._end_without_approval(
                    context, "SuspendedTimedOut", "Timed out waiting to be resumed"
                )
            raise RuntimeError(f"the approval request failed: {event}")
        user = event.get("responded_by_user") or {}
        approver = str(user.get("name") or user.get("id") or "unknown")
        chosen = list(event.get("chosen_options") or [])
        payload: Any = dict(event.get("params_input") or {})
        if set(payload) == {PAYLOAD_KEY}:  # a resume link's payload that is not a JSON object
            payload = payload[PAYLOAD_KEY]
        approvals: list[dict[str, Any]] = list(_pull(ti, self.task_id, _APPROVALS_KEY) or [])
        # Answers given through Airflow's own endpoint or page were not checked: check them here.
        refused = refusal(
            self._rules(approvals),
            approver=approver,
            started_by=getattr(context.get("dag_run"), "triggering_user_name", None),
            chosen=chosen,
            form=payload,
        )
        if refused is not None:
            self.log.warning("the answer of %s does not count: %s; still waiting", approver, refused[1])
        elif REJECT in chosen:
            return self._end_without_approval(context, "SuspendedDisapproved", f"Disapproved by {approver}")
        else:
            approvals.append({"approver": approver, "payload": payload})
            self._record(ti, approvals)
            self.log.info("approved by %s (%d of %d)", approver, len(approvals), self.required)
        if len(approvals) >= self.required:
            return self._approved(context, approvals)
        return self._wait_again(context)

    def _wait_again(self, context: Any) -> Any:
        ti = context["ti"]
        deadline = _pull(ti, self.task_id, _DEADLINE_KEY)
        left = float(deadline) - datetime.datetime.now(tz=datetime.UTC).timestamp() if deadline else 0.0
        if left <= 0:
            return self._end_without_approval(context, *_TIMED_OUT)
        self.response_timeout = datetime.timedelta(seconds=left)
        return self._open_request(context)  # the same request again, for the rest of the time

    def _open_request(self, context: Any) -> Any:
        """HITLOperator's ``execute``: writes the request, with the form (its params), and waits in
        ``awaiting_input``. Only the ``resume_form`` fields: never the DAG's params."""
        self.params.update(self.form_params)
        self.subject = self._request_subject(context["ti"])
        self.body = self._request_body(context)
        return super().execute(context)

    def _request_subject(self, ti: Any) -> str:
        """The request's subject; in a loop iteration, with its index and (a preview of) its item."""
        if ti.map_index < 0:
            return self.step_subject
        item = json_preview(self.iteration, ITEM_PREVIEW_CHARS)
        return f"{self.step_subject}, iteration {ti.map_index} ({item})"

    def _request_body(self, context: Any) -> str:
        """What the approver reads: the step and flow by name, then what is being approved, as
        Windmill's approval page shows it: the step's result (a bounded preview) and where the
        step's log is."""
        from airflow.sdk import conf

        ti = context["ti"]
        result = _pull(ti, self.step_task_id, "return_value")
        preview = json_preview(result, RESULT_PREVIEW_CHARS)
        fence = "`" * max(3, max((len(r) for r in re.findall("`+", preview)), default=0) + 1)
        base = conf.get("api", "base_url", fallback="") or ""
        where = (
            f"{quote(ti.dag_id, safe='')}/runs/{quote(ti.run_id, safe='')}/tasks/"
            f"{quote(self.step_task_id, safe='')}"
        )
        which = f"task `{self.step_task_id}` of this run"
        if ti.map_index >= 0:
            where += f"/mapped/{ti.map_index}"
            which = f"task `{self.step_task_id}`, iteration {ti.map_index}, of this run"
        log = f"{base.rstrip('/')}/dags/{where}" if base else f"/dags/{where}"
        return (
            f"{self.intro}\n\n**Result of {self.step_name}:**\n\n{fence}json\n{preview}\n{fence}\n\n"
            f"Its log: [{self.plan.step_id}]({log}) ({which})."
        )

    def _required_groups(self, context: Any) -> list[str]:
        """``user_groups_required``: a static list or an expression (``result`` = the step's result)."""
        transform = self.module.suspend.user_groups_required if self.module.suspend else None
        if transform is None:
            return []
        from airflow_openflow.runtime.airflow_context import AirflowStepContext
        from airflow_openflow.runtime.expressions import evaluate_transform
        from airflow_openflow.runtime.step_context import static_scope, step_scope

        ctx = AirflowStepContext(context, self.plan, iteration=self.iteration)
        if transform.kind == "static":
            scope = static_scope(ctx)
        else:
            scope = step_scope(ctx, result=ctx.previous_result())
        value = evaluate_transform(transform, scope)
        groups = [value] if isinstance(value, str) else list(value or [])
        return [str(g) for g in groups if g]

    def _rules(self, approvals: list[dict[str, Any]]) -> dict[str, Any]:
        return approval_rules(
            form_schema=self.form_schema,
            self_approval_disabled=self.self_approval_disabled,
            approvers=[str(a["approver"]) for a in approvals],
            user_auth_required=self.user_auth_required,
            groups=self.groups,
        )

    def _record(self, ti: Any, approvals: list[dict[str, Any]]) -> None:
        """The approvals so far, for the next round; the rules with them, for the endpoint."""
        ti.xcom_push(key=_APPROVALS_KEY, value=approvals)
        ti.xcom_push(key=RULES_KEY, value=self._rules(approvals))

    def _approved(self, context: Any, approvals: list[dict[str, Any]]) -> Any:
        from airflow_openflow.runtime.outcomes import OutcomeKind

        ti = context["ti"]
        payloads = [a["payload"] for a in approvals]
        approvers = [str(a["approver"]) for a in approvals]
        resumed = {"resume": payloads[-1] if payloads else None, "resumes": payloads, "approvers": approvers}
        ti.xcom_push(key=RESUME_KEY, value=resumed)
        kind = OutcomeKind.SUCCESS
        if self.in_body and _pull(ti, self.step_task_id, OUTCOME_KEY) == OutcomeKind.CONTINUED_ERROR.value:
            kind = OutcomeKind.CONTINUED_ERROR  # the body still ends on the step's error
        ti.xcom_push(key=OUTCOME_KEY, value=kind.value)
        self.log.info("step %s approved by %s", self.plan.step_id, ", ".join(approvers))
        return self._step_result(ti)

    def _end_without_approval(self, context: Any, name: str, message: str) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_openflow.runtime.outcomes import OutcomeKind

        ti = context["ti"]
        error = {"error": {"name": name, "message": message}}
        if self.continue_on_disapprove_timeout:
            # Windmill: the next step runs, with the error object as the (last) resume payload.
            approvals = list(_pull(ti, self.task_id, _APPROVALS_KEY) or [])
            payloads = [*(a["payload"] for a in approvals), error]
            resumed = {"resume": error, "resumes": payloads, "approvers": [a["approver"] for a in approvals]}
            ti.xcom_push(key=RESUME_KEY, value=resumed)
            ti.xcom_push(key=OUTCOME_KEY, value=OutcomeKind.SUCCESS.value)
            self.log.warning(
                "step %s: %s; continuing (continue_on_disapprove_timeout)", self.plan.step_id, message
            )
            return self._step_result(ti)
        ti.xcom_push(key=OUTCOME_KEY, value=OutcomeKind.FAILED.value)
        ti.xcom_push(key="return_value", value=error)
        raise AirflowFailException(f"step {self.plan.step_id}: {name}: {message}")

    def _step_result(self, ti: Any) -> Any:
        """The approval passes the step's result on: a flow ending on an approval returns it."""
        return _pull(ti, self.step_task_id, "return_value")


def _after_rejection(goes_on: bool, in_body: bool) -> str:
    """What the request's body says a rejection does."""
    if goes_on:
        return " A rejection lets the flow go on (continue_on_disapprove_timeout)."
    if in_body:
        return " A rejection fails the step; its loop or branch then follows its own rules (skip_failures)."
    return " A rejection fails the flow."


def _pull(ti: Any, task_id: str, key: str) -> Any:
    """An XCom of ``task_id`` at this task instance's own map index (-1 when not in a loop)."""
    return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=ti.map_index)
