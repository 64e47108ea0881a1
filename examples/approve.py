"""Approve or reject an OpenFlow approval step from a script, over Airflow's REST API.

    python examples/approve.py --base http://127.0.0.1:8080 --user alice --password secret \\
        --dag my_flow --run 'manual__2026-11-21T10:00:00+00:00' [--reject] [--form '{"comment": "ok"}']

It logs in (``POST /auth/token``), finds the run's open approval request
(``GET /api/v2/dags/{dag}/dagRuns/{run}/hitlDetails``) and answers it through the provider's
endpoint ``POST /openflow/approvals/{dag}/{run}/{task}``, which refuses what the step does not
allow (403, 409, 422) instead of accepting it. Standard library only. Exit code 0 when the answer
was recorded, 1 when it was refused or there was nothing to answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def login(base: str, user: str, password: str) -> str:
    status, body = call(base, "POST", "/auth/token", {"username": user, "password": password})
    if status not in (200, 201):
        raise SystemExit(f"login failed for {user}: {status} {body}")
    return str(body["access_token"])


def open_approval(base: str, token: str, dag_id: str, run_id: str) -> str | None:
    """The task id of the run's approval request that waits for an answer, if any."""
    quoted = (
        f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    )
    status, body = call(base, "GET", f"{quoted}/hitlDetails?response_received=false", token=token)
    if status != 200:
        raise SystemExit(f"cannot list approval requests: {status} {body}")
    for detail in body.get("hitl_details", []):
        if detail["task_instance"]["state"] == "awaiting_input":
            return str(detail["task_instance"]["task_id"])
    return None


def answer(
    base: str,
    token: str,
    dag_id: str,
    run_id: str,
    *,
    approve: bool = True,
    form: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """Answer the run's open approval request; (HTTP status, response body)."""
    task_id = open_approval(base, token, dag_id, run_id)
    if task_id is None:
        return 404, {"detail": "no approval request of this run waits for an answer"}
    path = "/openflow/approvals/" + "/".join(
        urllib.parse.quote(p, safe="") for p in (dag_id, run_id, task_id)
    )
    body = {"chosen_options": ["Approve" if approve else "Reject"], "params_input": form or {}}
    return call(base, "POST", path, body, token=token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the Airflow API server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--dag", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--reject", action="store_true", help="reject instead of approving")
    parser.add_argument("--form", default="{}", help="the approval form's payload, as a JSON object")
    args = parser.parse_args(argv)
    token = login(args.base, args.user, args.password)
    status, body = answer(
        args.base, token, args.dag, args.run, approve=not args.reject, form=json.loads(args.form)
    )
    print(json.dumps({"status": status, "response": body}, indent=2, default=str))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
