"""Approve or reject an OpenFlow approval step from a script, over Airflow's REST API.

    python examples/approve.py --base http://127.0.0.1:8080 --user alice --password secret \\
        --dag my_flow --run 'manual__2026-11-21T10:00:00+00:00' [--reject] [--form '{"comment": "ok"}'] \
        [--iteration 2]

It logs in (``POST /auth/token``), finds the run's open approval request
(``GET /api/v2/dags/{dag}/dagRuns/{run}/hitlDetails``) and answers it through the provider's
endpoint ``POST /openflow/approvals/{dag}/{run}/{task}[/{map_index}]``, which refuses what the
step does not allow (403, 409, 422) instead of accepting it. An approval inside a loop asks once per
iteration: ``--iteration N`` answers iteration N's request (without it, the first open one).
Standard library only. Exit code 0 when the answer was recorded, 1 when it was refused or there was
nothing to answer.
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


def open_approval(
    base: str, token: str, dag_id: str, run_id: str, iteration: int | None = None
) -> tuple[str, int] | None:
    """(task id, map index) of the run's approval request that waits for an answer (of loop
    iteration ``iteration``, if given), if any."""
    quoted = (
        f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    )
    status, body = call(base, "GET", f"{quoted}/hitlDetails?response_received=false", token=token)
    if status != 200:
        raise SystemExit(f"cannot list approval requests: {status} {body}")
    for detail in body.get("hitl_details", []):
        ti = detail["task_instance"]
        if ti["state"] == "awaiting_input" and iteration in (None, ti["map_index"]):
            return str(ti["task_id"]), int(ti["map_index"])
    return None


def answer(
    base: str,
    token: str,
    dag_id: str,
    run_id: str,
    *,
    approve: bool = True,
    form: dict[str, Any] | None = None,
    iteration: int | None = None,
) -> tuple[int, Any]:
    """Answer the run's open approval request; (HTTP status, response body)."""
    found = open_approval(base, token, dag_id, run_id, iteration)
    if found is None:
        which = "" if iteration is None else f" (iteration {iteration})"
        return 404, {"detail": f"no approval request of this run{which} waits for an answer"}
    task_id, map_index = found
    parts = [dag_id, run_id, task_id, *([str(map_index)] if map_index >= 0 else [])]
    path = "/openflow/approvals/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)
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
    parser.add_argument(
        "--iteration", type=int, help="for an approval inside a loop: the iteration to answer"
    )
    args = parser.parse_args(argv)
    token = login(args.base, args.user, args.password)
    status, body = answer(
        args.base,
        token,
        args.dag,
        args.run,
        approve=not args.reject,
        form=json.loads(args.form),
        iteration=args.iteration,
    )
    print(json.dumps({"status": status, "response": body}, indent=2, default=str))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
