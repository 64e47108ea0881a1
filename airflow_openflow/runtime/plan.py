"""What a step task knows about its place in the flow, fixed when the DAG is built.

Plain data: built by ``compile/``, read by the operators on the worker. No Airflow imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: XCom key holding a step's ``OutcomeKind`` value (the step's result is ``return_value``).
OUTCOME_KEY = "openflow_outcome"
#: XCom key of a loop's items task holding the evaluated ``parallelism`` of a parallel loop.
PARALLELISM_KEY = "openflow_parallelism"
#: XCom key of an approval task holding ``{"resume", "resumes", "approvers"}`` for the next step.
RESUME_KEY = "openflow_resume"
#: XCom key holding the flow's status on the final task.
STATUS_KEY = "openflow_status"


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """Flow-level facts every step needs at run time."""

    dag_id: str
    schema: dict[str, Any] | None = None
    flow_env: dict[str, Any] = field(default_factory=dict)
    #: the task of the flow's preprocessor_module; when it ran, its result is the flow input
    preprocessor_task_id: str | None = None
    #: ``value.same_worker``: script steps share the run's ``./shared`` folder (runtime/shared_dir.py)
    same_worker: bool = False
    #: the flow's Windmill path (``f/folder/name``), e.g. for ``wmill.get_state``; "" if unknown
    path: str = ""
    #: the ``args`` of the flow's schedule file: the flow input of runs its schedule starts
    #: (scheduled and backfill runs); None when the DAG's schedule does not come from such a file
    schedule_args: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    flow: FlowInfo
    #: the step whose result is ``previous_result``; None for the first step (the flow input)
    previous_step_id: str | None = None
    #: steps that have run before this one, so ``results.<id>`` may read them; any other id reads
    #: null, even if an older try of a later step left an XCom behind (Windmill: not yet run = null)
    visible_step_ids: frozenset[str] = frozenset()
    #: task ids to skip when this step stops the flow early
    later_task_ids: tuple[str, ...] = ()
    #: set on the failure module: the top-level steps whose failure it handles; its
    #: ``previous_result`` is the failed step's result (the error object)
    handles_failure_of: tuple[str, ...] = ()
    #: set on the steps of a loop iteration or branch on tasks: step id -> task id of the body's
    #: steps that run before this one in the same iteration / branch (read at its own map index)
    iteration_task_ids: dict[str, str] | None = None
    #: a loop iteration's step (flow_input gets ``iter``); a branch's steps keep the run's input
    in_loop_iteration: bool = False
    #: the first step of a branchone branch on tasks: (the choosing task, this branch's index)
    branch_choice: tuple[str, int] | None = None
    #: for the collector of such a loop: the task evaluating the iterator, and the body's tasks
    items_task_id: str | None = None
    body_task_ids: tuple[str, ...] = ()
    #: the step right after an approval: the approval task, whose responses its expressions see
    #: as ``resume``, ``resumes`` and ``approvers`` (spec 6.2: that step only)
    resume_task_id: str | None = None
    #: a step with ``suspend``: its approval task, which ``wmill.get_resume_urls()`` links point at
    approval_task_id: str | None = None
