"""``airflow-openflow restart``: restart a DAG run of a flow from a Windmill step, through Airflow's
public REST API (``POST /api/v2/dags/{dag_id}/clearTaskInstances``). docs/restart.md.

Standard library only (urllib). Step ids are mapped to the task ids the compiler made
(compile/naming.py, docs/mapping.md) from the DAG's task list (``GET /api/v2/dags/{dag_id}/tasks``),
so the command needs no flow file, only the API server.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Helpers the compiler adds next to the step tasks (naming.TaskIds appends ``_`` on a collision).
_HELPER_SUFFIXES = ("_items", "_choose", "_approval", "_sleep")
_HELPER_IDS = re.compile(r"^(flow_result|skip_expr|flow_cache)_*$")
_LOOP_DOC = re.compile(r"Evaluates the iterator of loop `(?P<loop>[^`]+)` \((?P<mode>parallel|sequential)\)")

ClearTarget = str | list[Any]  # "task_id", or ["task_id", map_index]


class RestartError(Exception):
    """A problem the user can fix (unknown DAG, run or step, bad option): message and exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class TaskInfo:
    task_id: str
    downstream: tuple[str, ...] = ()
    doc_md: str = ""
    is_mapped: bool = False


@dataclass(frozen=True)
class Loop:
    """A top-level for-loop that runs on tasks: its items task, its mapped group's tasks in order."""

    loop_id: str
    parallel: bool
    items_task: str
    body: tuple[str, ...] = field(default=())


def tasks_from_api(payload: Mapping[str, Any]) -> dict[str, TaskInfo]:
    """``GET /api/v2/dags/{dag_id}/tasks`` -> task id -> TaskInfo."""
    tasks: dict[str, TaskInfo] = {}
    for task in payload.get("tasks") or []:
        task_id = str(task["task_id"])
        tasks[task_id] = TaskInfo(
            task_id=task_id,
            downstream=tuple(task.get("downstream_task_ids") or ()),
            doc_md=str(task.get("doc_md") or ""),
            is_mapped=bool(task.get("is_mapped")),
        )
    return tasks


def loops(tasks: Mapping[str, TaskInfo]) -> dict[str, Loop]:
    """The top-level for-loops on tasks, by loop step id (from their items task's doc)."""
    found: dict[str, Loop] = {}
    for info in tasks.values():
        match = _LOOP_DOC.search(info.doc_md)
        if match is None:
            continue
        groups = {t.rsplit(".", 1)[0] for t in info.downstream if "." in t}
        body = tuple(t for t in _in_order(tasks) if "." in t and t.rsplit(".", 1)[0] in groups)
        found[match["loop"]] = Loop(match["loop"], match["mode"] == "parallel", info.task_id, body)
    return found


def _in_order(tasks: Mapping[str, TaskInfo]) -> list[str]:
    """Task ids, upstream before downstream (ties by id)."""
    upstream_count = {t: 0 for t in tasks}
    for info in tasks.values():
        for down in info.downstream:
            if down in upstream_count:
                upstream_count[down] += 1
    ready = sorted(t for t, n in upstream_count.items() if n == 0)
    ordered: list[str] = []
    while ready:
        task_id = ready.pop(0)
        ordered.append(task_id)
        for down in tasks[task_id].downstream:
            if down in upstream_count:
                upstream_count[down] -= 1
                if upstream_count[down] == 0:
                    ready.append(down)
                    ready.sort()
    return ordered + sorted(set(tasks) - set(ordered))


def step_ids(tasks: Mapping[str, TaskInfo]) -> list[str]:
    """The step ids one can restart from: top-level steps and steps in a top-level loop/branch group."""
    steps: list[str] = []
    helpers = {info.task_id for info in tasks.values() if _LOOP_DOC.search(info.doc_md)}
    for task_id in _in_order(tasks):
        step = task_id.rsplit(".", 1)[-1]
        if task_id in helpers or _HELPER_IDS.match(step) or step in steps:
            continue
        # A helper of a step (also in a group: ``<loop>_iterations.<id>_approval``).
        if any(
            task_id.rstrip("_").endswith(s) and task_id.rstrip("_")[: -len(s)] in tasks
            for s in _HELPER_SUFFIXES
        ):
            continue
        steps.append(step)
    return steps


def step_tasks(step: str, tasks: Mapping[str, TaskInfo]) -> list[str]:
    """The tasks to clear (with their downstream) to re-run ``step`` and everything after it.

    A top-level step: its task, and for a container on tasks the helpers that run first (``<id>_items``
    of a loop, ``<id>_choose`` of a branchone) and its groups' tasks (``<id>_iterations.*``,
    ``<id>_branch_<i>.*``, ``<id>_default.*``). A step inside a top-level group: ``<group>.<id>``, in
    every iteration of a loop. An exact task id is accepted as well."""
    if step in tasks and "." in step:
        return [step]
    groups = re.compile(rf"^{re.escape(step)}_(iterations|branch_\d+|default)_*\.")
    helpers = {f"{step}{suffix}" for suffix in ("_items", "_choose")}
    found = [t for t in _in_order(tasks) if t == step or t in helpers or groups.match(t)]
    if step in tasks or found:
        return found
    return [t for t in _in_order(tasks) if "." in t and t.rsplit(".", 1)[1] == step]


def clear_targets(
    step: str, tasks: Mapping[str, TaskInfo], *, iteration: int | None = None, map_indexes: Sequence[int] = ()
) -> list[ClearTarget]:
    """The ``task_ids`` of the clear request. ``map_indexes``: the iterations the run has (for
    ``iteration``): a sequential loop re-runs iterations ``iteration``.. to the end, a parallel loop
    iteration ``iteration`` only (each with what follows, through ``include_downstream``)."""
    found = step_tasks(step, tasks)
    if not found:
        known = ", ".join(step_ids(tasks)) or "(none)"
        raise RestartError(f"no step {step!r} in this DAG; its steps: {known}")
    if iteration is None:
        return list(found)
    if iteration < 0:
        raise RestartError("--iteration must be 0 or more")
    all_loops = loops(tasks)
    loop = all_loops.get(step)
    if loop is not None:
        first = loop.body[:1]
    else:
        loop = next((lp for lp in all_loops.values() if found[0] in lp.body), None)
        first = (found[0],)
    if loop is None or not loop.body:
        names = ", ".join(sorted(all_loops)) or "(none)"
        raise RestartError(
            f"--iteration needs a top-level for-loop step or a step of its body; {step!r} is not one "
            f"(loops that run on tasks: {names})"
        )
    if iteration not in map_indexes:
        have = f"0..{max(map_indexes)}" if map_indexes else "none yet"
        raise RestartError(
            f"loop {loop.loop_id!r} has no iteration {iteration} in this run (iterations: {have})"
        )
    targets: list[ClearTarget] = [[first[0], iteration]]
    if not loop.parallel:  # Windmill: a sequential loop restarts from iteration N: N, N+1, ... run again
        targets += [[loop.body[0], i] for i in sorted(map_indexes) if i > iteration]
    return targets


# -- REST -----------------------------------------------------------------------------------------


class ApiClient:
    def __init__(self, api_url: str, token: str | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise RestartError(f"cannot reach the Airflow API at {self.api_url}: {exc}", 1) from exc

    def fetch_token(self, username: str | None, password: str | None) -> str:
        """``POST /auth/token`` with the credentials; without them ``GET /auth/token`` (a simple auth
        manager with ``simple_auth_manager_all_admins``)."""
        if username is not None:
            status, body = self.request(
                "POST", "/auth/token", {"username": username, "password": password or ""}
            )
        else:
            status, body = self.request("GET", "/auth/token")
        if status not in (200, 201) or not isinstance(body, dict) or "access_token" not in body:
            how = f"as {username!r}" if username is not None else "without credentials"
            raise RestartError(
                f"no API token {how} ({status}: {_detail(body)}); give --token (or AIRFLOW_API_TOKEN) "
                "or --username/--password",
                1,
            )
        return str(body["access_token"])

    def get(self, path: str, what: str) -> Any:
        status, body = self.request("GET", path)
        if status == 404:
            raise RestartError(f"{what} not found")
        _check(status, body, f"GET {path}")
        return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def _detail(body: Any) -> str:
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


def _check(status: int, body: Any, what: str) -> None:
    if status in (401, 403):
        raise RestartError(f"{what}: not allowed ({status}: {_detail(body)})", 1)
    if status >= 300:
        raise RestartError(f"{what} failed ({status}: {_detail(body)})", 1)


def default_api_url() -> str:
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "http://localhost:8080")


def restart(
    dag_id: str,
    run_id: str,
    step: str,
    *,
    iteration: int | None = None,
    dry_run: bool = False,
    api_url: str | None = None,
    token: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> list[dict[str, Any]]:
    """Clears ``step`` and what follows in the run (or only asks what would be cleared, ``dry_run``);
    returns the task instances from the response."""
    client = ApiClient(api_url or default_api_url(), token or os.environ.get("AIRFLOW_API_TOKEN") or None)
    if not client.token:
        client.token = client.fetch_token(username, password)
    dag = urllib.parse.quote(dag_id, safe="")
    run = urllib.parse.quote(run_id, safe="")
    client.get(f"/api/v2/dags/{dag}", f"DAG {dag_id!r}")
    client.get(f"/api/v2/dags/{dag}/dagRuns/{run}", f"run {run_id!r} of DAG {dag_id!r}")
    tasks = tasks_from_api(client.get(f"/api/v2/dags/{dag}/tasks", f"the tasks of DAG {dag_id!r}"))
    map_indexes: list[int] = []
    if iteration is not None:
        map_indexes = _map_indexes(client, dag, run, step, tasks)
    targets = clear_targets(step, tasks, iteration=iteration, map_indexes=map_indexes)
    body = {
        "dag_run_id": run_id,
        "task_ids": targets,
        "include_downstream": True,
        "include_upstream": False,
        "only_failed": False,
        "dry_run": dry_run,
        "reset_dag_runs": True,
    }
    status, response = client.request("POST", f"/api/v2/dags/{dag}/clearTaskInstances", body)
    _check(status, response, "clearing the task instances")
    instances = response.get("task_instances", []) if isinstance(response, dict) else []
    return sorted(instances, key=_sort_key)


def _sort_key(ti: Mapping[str, Any]) -> tuple[str, int]:
    index = ti.get("map_index")
    return str(ti.get("task_id")), -1 if index is None else int(index)


def _map_indexes(
    client: ApiClient, dag: str, run: str, step: str, tasks: Mapping[str, TaskInfo]
) -> list[int]:
    """The iterations the run has of the loop ``step`` belongs to (the map indexes of a body task)."""
    clear_targets(step, tasks)  # an unknown step: its own message first
    all_loops = loops(tasks)
    loop = all_loops.get(step) or next(
        (lp for lp in all_loops.values() if set(step_tasks(step, tasks)) & set(lp.body)), None
    )
    if loop is None or not loop.body:
        return []
    task = urllib.parse.quote(loop.body[0], safe="")
    body = client.get(
        f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/listMapped?limit=1000",
        "the loop's iterations",
    )
    return sorted(
        {int(ti["map_index"]) for ti in body.get("task_instances", []) if int(ti["map_index"]) >= 0}
    )


def format_instances(
    instances: Sequence[Mapping[str, Any]], *, dry_run: bool, dag_id: str, run_id: str
) -> str:
    """A readable list: task, map index, state."""
    verb = "Would clear" if dry_run else "Cleared"
    lines = [f"{verb} {len(instances)} task instance(s) of run {run_id} of {dag_id}:"]
    width = max([len(str(ti.get("task_id"))) for ti in instances] + [4])
    lines.append(f"  {'task':<{width}}  map index  state")
    for ti in instances:
        index = ti.get("map_index")
        shown = "-" if index is None or int(index) < 0 else str(index)
        lines.append(f"  {ti.get('task_id')!s:<{width}}  {shown:<9}  {ti.get('state') or 'none'}")
    if dry_run:
        lines.append("(dry run: nothing was changed; the states are the current ones)")
    return "\n".join(lines)
