"""Windmill's signed resume and cancel links, for approvers without an Airflow login (spec 6.3).

A link names one approval task and carries a random ``resume_id``, an expiry time and an
HMAC-SHA256 signature over all of it (and the approver name, when the link is for one person), made
with a secret shared by the workers and the API server. The API server's plugin verifies it, uses
each ``resume_id`` once, and accepts it only while that approval task is waiting.
No Airflow imports: the signing is plain standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

#: Airflow Variable holding the signing secret (created on first use; masked in the UI).
SECRET_VARIABLE = "openflow_resume_link_secret"
#: What a link's payload is wrapped in when it is not a JSON object (HITL keeps objects only).
PAYLOAD_KEY = "__openflow_payload"


def signature(
    secret: str,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    resume_id: int,
    expires: int,
    approver: str | None,
    map_index: int = -1,
) -> str:
    """The link's signature; a mapped approval's (a loop iteration's) signs its map index too. An
    unmapped one's message is what links made before mapped approvals existed signed."""
    where: list[Any] = [dag_id, run_id, task_id] if map_index < 0 else [dag_id, run_id, task_id, map_index]
    message = json.dumps([*where, resume_id, expires, approver or ""])
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def is_valid(secret: str, given: str, **fields: Any) -> bool:
    return hmac.compare_digest(signature(secret, **fields), given)


def resume_urls(
    *,
    base_url: str,
    secret: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    lifetime_s: float,
    approver: str | None = None,
    map_index: int = -1,
) -> dict[str, str]:
    """``{"approvalPage", "resume", "cancel"}`` as ``wmill.get_resume_urls()`` returns them; for
    the approval of one loop iteration (``map_index``), its instance's."""
    resume_id = secrets.randbelow(2**31)
    expires = int(time.time() + lifetime_s)
    sig = signature(
        secret,
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        resume_id=resume_id,
        expires=expires,
        approver=approver,
        map_index=map_index,
    )
    base = base_url.rstrip("/")
    where = f"{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{quote(task_id, safe='')}"
    query = {
        **({"approver": approver} if approver else {}),
        **({"map_index": map_index} if map_index >= 0 else {}),
    }
    tail = f"{where}/{resume_id}/{expires}/{sig}" + (f"?{urlencode(query)}" if query else "")
    # The UI's page of one mapped instance is .../mapped/<i>/... (its ?map_index= form shows none).
    instance = f"/mapped/{map_index}" if map_index >= 0 else ""
    return {
        "approvalPage": f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/"
        f"{quote(task_id, safe='')}{instance}/required_actions",
        "resume": f"{base}/openflow/resume/{tail}",
        "cancel": f"{base}/openflow/cancel/{tail}",
    }
