"""OpenFlow document -> Airflow DAG, at DAG-parse time: no JavaScript, no script import, no network."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import DAG, TriggerRule

from airflow_openflow.compile import branchall, branchone, forloop, subflow
from airflow_openflow.compile.approval import approval_task
from airflow_openflow.compile.builders import build_step
from airflow_openflow.compile.naming import TaskIds, flow_display_name, helper_display_name
from airflow_openflow.compile.params import params_from_schema
from airflow_openflow.compile.schedule import DagSchedule
from airflow_openflow.compile.task import display_name, task_settings
from airflow_openflow.operators.flow_cache import FlowCacheOperator
from airflow_openflow.operators.preprocessor import PreprocessorOperator
from airflow_openflow.operators.result import FlowResultOperator
from airflow_openflow.operators.sleep import FlowSleepOperator
from airflow_openflow.runtime.plan import FlowInfo, Prefix, StepPlan, Tail
from airflow_openflow.spec.errors import FlowDocumentError, Problem
from airflow_openflow.spec.locate import join_path, with_lines_from_file
from airflow_openflow.spec.model import (
    FlowModule,
    Identity,
    OpenFlow,
    PathFlow,
    StopAfterIf,
    all_modules,
    asks_approval,
)
from airflow_openflow.spec.scripts import with_scripts_inlined
from airflow_openflow.spec.subflows import with_subflows_resolved

TAG = "openflow"


def build_dag(
    flow: OpenFlow,
    *,
    dag_id: str,
    fileloc: str | None = None,
    warnings: Sequence[Problem] = (),
    sub_flow_dag_id: Callable[[OpenFlow], str | None] | None = None,
    flow_path: str = "",
    flow_schedule: DagSchedule | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """One DAG per flow: one task per top-level step, chained in order, then ``flow_result``.

    Steps after the first use ``none_failed``: a step skipped by ``skip_if`` still lets the flow
    go on, a failure stops it. An early stop marks every later step skipped explicitly, so no
    trigger rule can run them again. ``flow_result`` (``all_done``) turns the step outcomes into
    the flow's status and result and fails when the flow failed, so the run state is the flow's.

    ``sub_flow_dag_id`` gives the dag_id of a child flow that is a DAG of the same load (else
    None): a top-level ``type: flow`` step on such a child starts a run of that DAG.
    ``flow_path`` is the flow's Windmill path (``f/folder/name``), where its scripts keep state.
    ``flow_schedule`` (compile/schedule.py) is the DAG's schedule from the flow's schedule files, whose
    args become the inputs of scheduled runs; a ``schedule`` in ``dag_kwargs`` wins over it.
    """
    # `type: script` steps run as their file's code, sub-flows as the loaded documents; both are
    # no-ops for a flow from spec.prepare_flow (what load_openflow_dags passes).
    flow, _ = with_subflows_resolved(with_scripts_inlined(flow))
    names, gate_id, final_id = _fixed_task_ids(flow)
    modules = _with_skip_expr_gate(flow, gate_id)
    preprocessor = flow.value.preprocessor_module
    flow_name = flow_display_name(flow.summary, flow_path, dag_id)
    info = FlowInfo(
        dag_id=dag_id,
        name=flow_name,
        schema=flow.schema,
        flow_env=dict(flow.value.flow_env),
        preprocessor_task_id=preprocessor.id if preprocessor is not None else None,
        path=flow_path,
        schedule_args=flow_schedule.args if flow_schedule and "schedule" not in dag_kwargs else None,
        same_worker=flow.value.same_worker,
    )
    dag_schedule = dag_kwargs.get("schedule", flow_schedule.schedule if flow_schedule else None)
    settings: dict[str, Any] = {
        "dag_display_name": flow_name,
        "schedule": dag_schedule,
        "catchup": False,
        "description": flow.summary or None,
        "doc_md": _doc_md(flow, warnings, flow_schedule.doc if flow_schedule else None, flow_path),
        # With a preprocessor, a triggered run's conf is the raw event, not the flow's inputs: the
        # form still shows them, but none is required. Same for a scheduled DAG: Airflow refuses a
        # schedule with required params, and a scheduled run's inputs are its schedule's args.
        "params": params_from_schema(
            flow.schema, enforce_required=preprocessor is None and dag_schedule is None
        ),
        **dag_kwargs,  # the DAG file's settings win, except that tags and default_args are merged
        "tags": [TAG, *[t for t in dag_kwargs.get("tags", ()) if t != TAG]],
        "default_args": {"owner": "openflow", "retries": 0, **dict(dag_kwargs.get("default_args") or {})},
    }
    dag = DAG(dag_id=dag_id, **settings)
    if fileloc:
        dag.fileloc = fileloc

    with dag:
        last_task: Any = None  # what the next step waits for: the step, or its sleep
        previous_id: str | None = None  # whose result is the next step's previous_result
        step_tasks: list[Any] = []
        # The step tasks so far (id -> (position, id)): each plan sees a prefix of this one dict.
        done: dict[str, tuple[int, str]] = {}

        def step_task_added(task: Any) -> None:
            step_tasks.append(task)
            done[task.task_id] = (len(done), task.task_id)

        if preprocessor is not None:
            # Runs first; a step like the others for the failure module and the flow's status.
            last_task = PreprocessorOperator(
                task_id=preprocessor.id,
                module=preprocessor,
                plan=StepPlan(step_id=preprocessor.id, flow=info),
                task_display_name=display_name(preprocessor),
                doc_md="The flow's preprocessor: runs only for a run started by a trigger event "
                "(`conf['__openflow_event']`, or an asset event); its result is the flow input.",
                **task_settings(preprocessor),
            )
            step_task_added(last_task)
        cache = _flow_cache_task(flow, info, names)
        if cache is not None:
            if last_task is not None:
                last_task >> cache
            last_task = cache
        resume_task_id: str | None = None  # the approval task right before this step, if any
        for module in modules:
            plan = StepPlan(
                step_id=module.id,
                flow=info,
                previous_step_id=previous_id,
                visible_step_ids=Prefix(done).keys(),
                resume_task_id=resume_task_id,
            )
            resume_task_id = None
            rule = TriggerRule.ALL_SUCCESS if last_task is None else TriggerRule.NONE_FAILED
            entries: list[Any]
            if forloop.runs_on_tasks(module):
                entry, task = forloop.build(module, plan, trigger_rule=rule, names=names)
                entries = [entry]
            elif branchall.runs_on_tasks(module):
                entries, task = branchall.build(module, plan, trigger_rule=rule, names=names)
            elif branchone.runs_on_tasks(module):
                entries, task = branchone.build(module, plan, trigger_rule=rule, names=names)
            elif (child := _child_dag(module, sub_flow_dag_id)) is not None:
                task = subflow.build(
                    module, plan, child_dag_id=child[0], child_result_task_id=child[1], trigger_rule=rule
                )
                entries = [task]
            else:
                _refuse_approvals_in_task(flow, module, in_run_flow=sub_flow_dag_id is None)
                task = build_step(module, plan, trigger_rule=rule)
                entries = [task]
            if last_task is not None:
                # The collector waits for the previous step too (all its branches may be empty).
                last_task >> list({id(t): t for t in [*entries, task]}.values())
            step_task_added(task)
            last_task, previous_id = task, module.id
            if asks_approval(module):
                # Its plan sees the step's result: ``result`` of user_groups_required.
                approval_plan = StepPlan(step_id=module.id, flow=info, visible_step_ids=Prefix(done).keys())
                approval = approval_task(module, approval_plan, names.reserve(f"{module.id}_approval"))
                task.plan = dataclasses.replace(task.plan, approval_task_id=approval.task_id)
                task >> approval
                step_task_added(approval)  # its failure (rejection, timeout) is the flow's
                last_task, resume_task_id = approval, approval.task_id
            if module.sleep is not None:
                sleep = _sleep_task(module, info, names)
                last_task >> sleep
                last_task = sleep
        handler = _failure_handler(flow, info, [t.task_id for t in step_tasks], step_tasks)
        final = FlowResultOperator(
            task_id=final_id,
            step_ids=[t.task_id for t in step_tasks],
            flow=info,
            failure_step_id=handler.task_id if handler is not None else None,
            cache=(cache.task_id, cache.version, cache.ttl) if cache is not None else None,
            trigger_rule=TriggerRule.ALL_DONE,
            task_display_name="Flow result",
            doc_md="Decides the flow's status and result from the steps' outcomes.",
        )
        if last_task is not None:
            last_task >> final
        if handler is not None:
            handler >> final
    # An early stop skips every task after the stopping step except the failure module and
    # flow_result, which decide the outcome; known once the graph is complete.
    keep = {final_id, *([handler.task_id] if handler is not None else [])}
    for task, later in zip(step_tasks, _later_task_ids(dag, step_tasks, keep), strict=True):
        task.plan = dataclasses.replace(task.plan, later_task_ids=later)
    if cache is not None:  # a cache hit skips everything but flow_result
        cache.step_task_ids = tuple(sorted(set(dag.task_ids) - {final_id, cache.task_id}))
    return dag


def _later_task_ids(dag: DAG, step_tasks: Sequence[Any], keep: set[str]) -> list[Tail]:
    """For each step task, every task downstream of it except ``keep``: tails of one shared tuple.

    The step tasks form a chain (each is downstream of the one before), so the tasks after step k
    are those step k reaches before step k + 1, then the tasks after step k + 1. Walking the chain
    backwards visits each task and edge once; asking Airflow for each step's downstream tasks
    (``get_flat_relative_ids``) walked the rest of the flow per step, quadratic in time and memory.
    Within the part of one step, ids are sorted (as the whole list was before).
    """
    parts: list[list[str]] = []
    seen = set(keep)  # keep: not skipped, and nothing but flow_result lies after them
    for position in range(len(step_tasks) - 1, -1, -1):
        part: list[str] = []
        stack = [step_tasks[position].task_id]
        while stack:
            for child in dag.task_dict[stack.pop()].downstream_task_ids:
                if child not in seen:
                    seen.add(child)
                    part.append(child)
                    stack.append(child)
        if position + 1 < len(step_tasks) and step_tasks[position + 1].task_id not in part:
            # Then a task seen from a later step might not lie after this one: the tails would lie.
            raise RuntimeError(
                f"compiler bug: step task {step_tasks[position + 1].task_id} does not "
                f"follow {step_tasks[position].task_id}"
            )
        parts.append(sorted(part))
    parts.reverse()
    shared = tuple(task_id for part in parts for task_id in part)
    tails: list[Tail] = []
    start = 0
    for part in parts:
        tails.append(Tail(shared, start))
        start += len(part)
    return tails


def _flow_cache_task(flow: OpenFlow, info: FlowInfo, names: TaskIds) -> Any:
    """The flow's ``cache_ttl`` (spec 1.2): a first task ``flow_cache`` that ends the run with the
    cached result of an earlier run with the same arguments and the same flow version."""
    if not flow.value.cache_ttl:
        return None
    import hashlib

    task_id = names.reserve("flow_cache")
    # The flow's version: its whole definition (an edited flow does not reuse older results).
    version = hashlib.sha256(repr(flow.value).encode()).hexdigest()
    return FlowCacheOperator(
        task_id=task_id,
        trigger_rule=TriggerRule.NONE_FAILED,  # after a preprocessor that skipped itself too
        flow=info,
        task_display_name="Flow cache",
        version=version,
        ttl=float(flow.value.cache_ttl),
        doc_md=f"The flow's cache (cache_ttl {flow.value.cache_ttl:g} s): a hit ends the run with "
        "the result of an earlier run with the same arguments.",
    )


def flow_result_task_id(flow: OpenFlow) -> str:
    """The id of the flow's final task: ``flow_result``, unless a step already has that id."""
    return _fixed_task_ids(flow)[2]


def _fixed_task_ids(flow: OpenFlow) -> tuple[TaskIds, str | None, str]:
    """The DAG's ids so far: every step id, then the ``skip_expr`` gate (None without one) and the
    final task, reserved first and always in this order, so that ``flow_result_task_id`` of a child
    flow names its DAG's final task without building that DAG."""
    names = TaskIds(m.id for m in all_modules(flow))
    gate_id = names.reserve("skip_expr") if flow.value.skip_expr else None
    return names, gate_id, names.reserve("flow_result")


def _refuse_approvals_in_task(flow: OpenFlow, module: FlowModule, *, in_run_flow: bool) -> None:
    """A top-level sub-flow step whose child runs inside its task (the child is not a DAG of this
    load) cannot hold an approval of the child's: refuse the flow, saying where and why (spec/support.py
    accepts approvals in a top-level step's sub-flow, which may run as a DAG of its own)."""
    value = module.value
    asking = _first_approval(value.resolved) if isinstance(value, PathFlow) and value.resolved else None
    if asking is None:
        return
    assert isinstance(value, PathFlow)
    if in_run_flow:
        why = "run_flow runs every sub-flow inside its step's task"
        hint = "run the flow on a deployment, from a DAG folder that holds both flows (docs/approvals.md)"
    else:
        why = "the sub-flow's file is not a flow of this DAG file's load, so it is no DAG of its own"
        hint = "load the sub-flow with the same load_openflow_dags call (the same folder) so it runs as a DAG"
    problem = Problem(
        f"not supported: sub-flow {value.path!r} has an approval step ({asking.id!r}), which cannot "
        f"wait inside this step's task: {why}",
        file=flow.source.file,
        json_path=join_path(value.json_path, "path"),
        hint=hint,
    )
    raise FlowDocumentError(with_lines_from_file([problem], flow.source.file))


def _first_approval(flow: OpenFlow) -> FlowModule | None:
    """A step of the flow, or of its sub-flows, that asks for approval, or None."""
    for module in all_modules(flow):
        if asks_approval(module):
            return module
        value = module.value
        if isinstance(value, PathFlow) and value.resolved is not None:
            found = _first_approval(value.resolved)
            if found is not None:
                return found
    return None


def _child_dag(
    module: FlowModule, sub_flow_dag_id: Callable[[OpenFlow], str | None] | None
) -> tuple[str, str] | None:
    """(dag_id, final task id) of the child flow of a ``type: flow`` step, when it is a DAG."""
    value = module.value
    if sub_flow_dag_id is None or not isinstance(value, PathFlow) or value.resolved is None:
        return None
    dag_id = sub_flow_dag_id(value.resolved)
    return (dag_id, flow_result_task_id(value.resolved)) if dag_id is not None else None


def _sleep_task(module: FlowModule, info: FlowInfo, names: TaskIds) -> Any:
    """A deferrable wait after the step (its ``sleep``), before the next step starts."""
    assert module.sleep is not None
    task_id = names.reserve(f"{module.id}_sleep")
    plan = StepPlan(
        step_id=module.id, flow=info, previous_step_id=module.id, visible_step_ids=frozenset({module.id})
    )
    return FlowSleepOperator(
        task_id=task_id,
        sleep=module.sleep,
        plan=plan,
        task_display_name=helper_display_name(display_name(module), "sleep"),
        trigger_rule=TriggerRule.NONE_FAILED,
        doc_md=f"Sleep after step `{module.id}`: the next step starts when it ends; no worker slot is held.",
    )


def _with_skip_expr_gate(flow: OpenFlow, gate_id: str | None) -> list[FlowModule]:
    """``skip_expr`` is evaluated once, before any step (spec 1.2): a first task that passes the
    flow input on (an identity) and, when the expression is true, ends the flow successfully as
    skipped. The steps after it see the flow input as their previous result, as without it."""
    modules = list(flow.value.modules)
    if not flow.value.skip_expr or gate_id is None:
        return modules
    gate = FlowModule(
        id=gate_id,
        value=Identity(json_path="value.skip_expr"),
        summary="Flow skip_expr",
        stop_after_if=StopAfterIf(
            expr=flow.value.skip_expr, skip_if_stopped=True, json_path="value.skip_expr"
        ),
        json_path="value.skip_expr",
    )
    return [gate, *modules]


def _failure_handler(flow: OpenFlow, info: FlowInfo, step_ids: list[str], steps: list[Any]) -> Any:
    """The failure module runs once when a step fails (``one_failed`` on every step), with the
    failed step's error as ``previous_result``; ``flow_result`` then takes its result (spec 5.1)."""
    module = flow.value.failure_module
    if module is None or not steps:  # an empty flow cannot fail
        return None
    plan = StepPlan(
        step_id=module.id,
        flow=info,
        visible_step_ids=frozenset(step_ids),
        handles_failure_of=tuple(step_ids),
    )
    handler = build_step(module, plan, trigger_rule=TriggerRule.ONE_FAILED)
    handler.doc_md = f"Failure module: runs when a step fails. {handler.doc_md or ''}"
    for step in steps:
        step >> handler
    return handler


def _doc_md(
    flow: OpenFlow, warnings: Sequence[Problem], schedule_doc: str | None = None, flow_path: str = ""
) -> str:
    """The DAG's docs: the flow's summary, description and Windmill path, its schedule, its steps
    (by summary), load warnings, and the flow document itself (bounded: MAX_DOC_SOURCE)."""
    parts = [f"# {flow.summary or flow_path or 'OpenFlow flow'}"]
    if flow.description:
        parts.append(flow.description)
    where = [f"Windmill path: `{flow_path}`"] if flow_path else []
    source = flow.source.file or "(a document given as a dict)"
    where.append(f"OpenFlow source: `{source}`")
    parts.append("  \n".join(where))
    if schedule_doc:
        parts.append(schedule_doc)
    steps = "\n".join(
        f"{i + 1}. {'**' + display_name(m) + '** ' if m.summary else ''}`{m.id}` ({m.value.type})"
        for i, m in enumerate(flow.value.modules)
    )
    if steps:
        parts.append("Steps:\n\n" + steps)
    if warnings:
        listed = "\n".join(f"- `{w.format()}`" for w in warnings)
        parts.append(f"Warnings from loading the document:\n\n{listed}")
    document = _document_text(flow)
    if document is not None:
        parts.append(document)
    return "\n\n".join(parts)


#: At most this many characters of the flow document go into the DAG's docs.
MAX_DOC_SOURCE = 20_000


def _document_text(flow: OpenFlow) -> str | None:
    """The flow document as written (``flow.yaml``, ``x.flow.json``), in a collapsed block.

    Airflow's UI renders doc_md without raw HTML, so there the ``<details>`` tags are dropped and
    the block shows open, under its own heading; other Markdown viewers fold it. Scripts kept in
    files of their own (``!inline``) are in their tasks' docs."""
    if not flow.source.file:
        return None
    try:
        with open(flow.source.file, encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_DOC_SOURCE + 1)
    except OSError:
        return None
    cut = len(text) > MAX_DOC_SOURCE
    text = text[:MAX_DOC_SOURCE].rstrip("\n")
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    language = "json" if flow.source.format == "json" else "yaml"
    name = os.path.basename(flow.source.file)
    note = f"\n\n(first {MAX_DOC_SOURCE} characters only)" if cut else ""
    return (
        f"### Flow document (`{name}`)\n\n<details>\n<summary>{name}</summary>\n\n"
        f"{fence}{language}\n{text}\n{fence}{note}\n\n</details>"
    )


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)
