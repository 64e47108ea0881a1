"""The provider's API-server endpoints for approval steps.

``POST /openflow/approvals/{dag_id}/{run_id}/{task_id}[/{map_index}]``: answer an approval step
with the flow's own rules checked *before* the answer is accepted (``map_index``: the loop
iteration of an approval inside a loop, as in Airflow's own endpoint; -1 or none: unmapped).

Airflow's human-in-the-loop endpoint accepts any answer from a user who may answer and leaves the
rest to the task. This endpoint first refuses what the step's ``suspend`` does not allow, with a
status code and a message: 403 when ``self_approval_disabled`` and the user started the run, 422
when the form payload violates ``resume_form.schema``, 409 when the user has already approved.
Then it records the answer exactly as Airflow's own endpoint does (the same function), so the task
resumes the same way. Airflow's permission to answer the DAG's HITL tasks is required as there.

``GET|POST /openflow/resume/...`` and ``/openflow/cancel/...``: the signed links of
``wmill.get_resume_urls()``, for approvers without an Airflow login. The signature is the
authorization: checked server-side, each link's ``resume_id`` works once, until its expiry and
only while its approval waits; the same rules apply, with the link's approver as the user.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from airflow_openflow.compat.api_server import (
    DagAccessEntity,
    GetUserDep,
    SessionDep,
    UpdateHITLDetailPayload,
    get_variable,
    metadata_session,
    read_task_xcom,
    record_hitl_answer,
    requires_access_dag,
    run_started_by,
    task_instance_state,
    write_task_xcom,
)
from airflow_openflow.runtime.approval_rules import GROUPS_ONLY_USER, RULES_KEY, group_refusal, refusal

#: XCom key of an approval task listing the resume ids of the links already used (each works once).
USED_LINKS_KEY = "openflow_used_resume_links"

app = FastAPI(
    title="airflow-openflow approvals",
    description="Answer OpenFlow approval steps with the flow's rules checked first.",
)


_MAY_ANSWER = [Depends(requires_access_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL))]


@app.post("/approvals/{dag_id}/{run_id}/{task_id}", dependencies=_MAY_ANSWER)
@app.post("/approvals/{dag_id}/{run_id}/{task_id}/{map_index}", dependencies=_MAY_ANSWER)
def answer_approval(
    dag_id: str,
    run_id: str,
    task_id: str,
    payload: UpdateHITLDetailPayload,
    user: GetUserDep,
    session: SessionDep,
    map_index: int = -1,
) -> Any:
    approval = _Approval(session, dag_id, run_id, task_id, map_index)
    if not approval.waiting_ever:
        where = f"{dag_id} / {run_id} / {task_id}" + (f" / {map_index}" if map_index >= 0 else "")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no OpenFlow approval is waiting at {where}")
    name = str(user.get_name() or user.get_id())
    approval.refuse(
        group_refusal(approval.rules, user) or approval.refusal(name, payload, payload.params_input)
    )
    return approval.record(payload, user, name)


# --- Signed resume / cancel links (wmill.get_resume_urls), no Airflow login -------------------


@app.api_route("/{action}/{dag_id}/{run_id}/{task_id}/{resume_id}/{expires}/{sig}", methods=["GET", "POST"])
async def answer_by_link(
    request: Request,
    action: Literal["resume", "cancel"],
    dag_id: str,
    run_id: str,
    task_id: str,
    resume_id: int,
    expires: int,
    sig: str,
) -> Any:
    payload = await _link_payload(request)
    approver = request.query_params.get("approver")
    try:  # the approval of a loop iteration; signed with the rest
        map_index = int(request.query_params.get("map_index", -1))
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "map_index is not an integer") from None
    link = {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "resume_id": resume_id,
        "expires": expires,
        "approver": approver,
        "map_index": map_index,
    }
    # The database work blocks: in a thread, never on the API server's event loop.
    return await run_in_threadpool(_answer_link, action, link, sig, payload)


def _answer_link(action: str, link: dict[str, Any], sig: str, payload: Any) -> Any:
    import time

    from airflow_openflow.runtime.resume_links import PAYLOAD_KEY, SECRET_VARIABLE, is_valid

    secret = get_variable(SECRET_VARIABLE)
    if not secret or not is_valid(secret, sig, **link):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid resume link")
    if time.time() > link["expires"]:
        raise HTTPException(status.HTTP_410_GONE, "this resume link has expired")
    params_input = (
        payload if isinstance(payload, dict) and PAYLOAD_KEY not in payload else {PAYLOAD_KEY: payload}
    )
    answer = UpdateHITLDetailPayload(
        chosen_options=["Approve" if action == "resume" else "Reject"], params_input=params_input
    )
    with metadata_session() as session:
        approval = _Approval(session, link["dag_id"], link["run_id"], link["task_id"], link["map_index"])
        approval.check_link(link["resume_id"])
        name = link["approver"] or "unknown"
        approval.refuse(approval.refusal(name, answer, payload))
        approval.mark_link_used(link["resume_id"])
        return approval.record(answer, _Responder(name, name), name)


async def _link_payload(request: Request) -> Any:
    """The payload: a POST's JSON body, or ``?payload=<base64 of the JSON>`` (Windmill's forms)."""
    import base64
    import json

    try:
        if request.method == "POST":
            body = await request.body()
            return json.loads(body) if body.strip() else {}
        encoded = request.query_params.get("payload")
        return json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4))) if encoded else {}
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the payload is not JSON: {exc}") from None


class _Approval:
    """One approval task of a run, as both endpoints see it: its rules (the task's XCom), the run's
    starter, and recording an answer with Airflow's own function."""

    def __init__(self, session: Any, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        self.session = session
        self.where: dict[str, Any] = {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": map_index,
        }
        rules = self._xcom(RULES_KEY)
        self.waiting_ever = rules is not None  # the task pushes its rules when it starts waiting
        self.rules: dict[str, Any] = rules or {}
        self.started_by = run_started_by(session, dag_id=dag_id, run_id=run_id)

    def _xcom(self, key: str) -> Any:
        return read_task_xcom(self.session, key=key, **self.where)

    def refusal(self, approver: str, answer: Any, form: Any) -> tuple[int, str] | None:
        return refusal(
            self.rules,
            approver=approver,
            started_by=self.started_by,
            chosen=list(answer.chosen_options),
            form=form,
        )

    @staticmethod
    def refuse(refused: tuple[int, str] | None) -> None:
        if refused is not None:
            code, message = refused
            raise HTTPException(code, message)

    def check_link(self, resume_id: int) -> None:
        """A link answers only a waiting approval that accepts links, once."""
        state = task_instance_state(self.session, **self.where)
        if state != "awaiting_input":
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "this approval is not waiting for an answer (it has not started yet, or it has ended)",
            )
        if resume_id in (self._xcom(USED_LINKS_KEY) or []):
            raise HTTPException(status.HTTP_409_CONFLICT, "this resume link has already been used")
        if self.rules.get("user_auth_required") or self.rules.get("groups"):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "this approval needs a logged-in approver (user_auth_required or user_groups_required): "
                "use its approval page or the OpenFlow approvals endpoint",
            )

    def mark_link_used(self, resume_id: int) -> None:
        used = [*(self._xcom(USED_LINKS_KEY) or []), resume_id]
        write_task_xcom(self.session, key=USED_LINKS_KEY, value=used, **self.where)

    def record(self, answer: Any, user: Any, name: str) -> Any:
        """Airflow's own HITL update (checks, resume of the waiting task). An approval with
        ``user_groups_required`` is assigned to GROUPS_ONLY_USER (so Airflow's endpoint refuses
        everyone); the groups were checked here, so the answer is recorded as that assignee, under
        the approver's name."""
        if self.rules.get("groups"):
            user = _Responder(GROUPS_ONLY_USER["id"], name)
        return record_hitl_answer(self.session, answer=answer, user=user, **self.where)


class _Responder:
    """The user Airflow records for an answer recorded here: a link's approver (``?approver=``),
    or the groups-only assignee answering for a checked member."""

    def __init__(self, user_id: str, name: str) -> None:
        self.user_id, self.name = user_id, name

    def get_id(self) -> str:
        return self.user_id

    def get_name(self) -> str:
        return self.name
