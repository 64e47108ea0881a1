"""Loops and branches executed inside one task: the in-task runner of container modules.

Used for what one Airflow task runs as a whole: a container step at the top level of a flow, and
containers nested where Airflow cannot map them (a loop inside a loop, while loops). Every leaf
step still goes through ``run_step``, so a step means the same thing wherever it runs.

The rules are Windmill's (spec 2.1, 3.3, 3.4, 4.4-4.8, 11):
- a body is a sub-flow: its ``flow_input`` is the parent's (plus ``iter`` in a for-loop, with the
  outer ``iter`` kept as ``iter_parent``), its first step's ``previous_result`` is that input, and
  its steps read outer results through ``results.<id>``; its own step results are not visible
  outside (the container's result is);
- a loop / branchall result is the array of each body's last result in index order, failed-but-
  tolerated slots holding the error object;
- ``stop_after_if`` inside a body: breaks a sequential loop (the flow goes on), ends only that
  iteration / branch when parallel, and stops the whole flow from a sequential branchall or a
  branchone branch.

Parallel loops and branches run their bodies at the same time, in threads of the task (at most
``parallelism`` at once); results keep index order. Python steps in those threads share the task's
working directory (a process has one), where a sequential step gets a directory of its own.

The container rules themselves (iterator, branch choice, outcomes) are runtime/container_rules.py,
shared with the operators that run containers as Airflow tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from airflow_openflow.runtime.container_rules import (
    after_all_iterations,
    branch_all_outcome,
    branch_modules,
    branch_one_outcome,
    break_after_iteration,
    choose_branch,
    flow_error,
    iteration_input,
    loop_items,
    loop_outcome,
    loop_width,
    with_names,
)
from airflow_openflow.runtime.errors import ExpressionError
from airflow_openflow.runtime.expressions import EvalScope, evaluate_predicate, evaluate_transforms
from airflow_openflow.runtime.inputs import flow_input_from
from airflow_openflow.runtime.outcomes import (
    ENDS_FLOW,
    BodyKind,
    BodyOutcome,
    FlowVerdict,
    OutcomeKind,
    StepOutcome,
    with_failure_module,
)
from airflow_openflow.runtime.retry import retry_interval
from airflow_openflow.runtime.step_context import RunStep, TaskServices, sleep_seconds
from airflow_openflow.spec.model import BranchAll, BranchOne, FlowModule, ForloopFlow, PathFlow, WhileloopFlow

if TYPE_CHECKING:
    from airflow_openflow.runtime.shared_dir import SharedLocation
    from airflow_openflow.runtime.wmill_session import CheckpointStore, WmillBackend

#: Threads one task uses at most for a parallel loop or branchall (parallelism can lower it).
_MAX_THREADS = 32


@dataclass
class Frame:
    """A (sub-)flow being run: its input, and where ``results.<id>`` look."""

    flow_input: Any
    lookup: Callable[[str], Any]  # results of steps outside this frame
    results: dict[str, Any] = field(default_factory=dict)
    #: where this body sits inside the task's containers ("" for the task's own level), e.g.
    #: ``outer[2]/``: nested loops checkpoint their iterations under it
    place: str = ""

    def result_of(self, step_id: str) -> Any:
        if step_id in self.results:
            return self.results[step_id]
        return self.lookup(step_id)

    def child(self, flow_input: Any, place: str) -> Frame:
        return Frame(flow_input=flow_input, lookup=self.result_of, place=f"{self.place}{place}/")


class _TaskServices:
    """What every step inside a task gets from the task itself: variables, resources, the cache,
    the state store (under the body's place), the ``./shared`` folder, the ``wmill`` backend."""

    _base: TaskServices
    _place: str = ""

    @property
    def task_state_store(self) -> CheckpointStore | None:
        store = self._base.task_state_store
        return _PlacedStore(store, self._place) if store is not None and self._place else store

    def variable(self, path: str) -> Any:
        return self._base.variable(path)

    @property
    def shared_location(self) -> SharedLocation | None:
        """The task's ``./shared`` store (same_worker), used by every step inside it."""
        return self._base.shared_location

    def wmill_backend(self, module: FlowModule) -> WmillBackend | None:
        return self._base.wmill_backend(module)

    def resource(self, path: str) -> Any:
        return self._base.resource(path)

    def cache_get(self, key: str) -> tuple[Any] | None:
        return self._base.cache_get(key)

    def cache_set(self, key: str, result: Any, ttl: float) -> None:
        self._base.cache_set(key, result, ttl)


class _FrameContext(_TaskServices):
    """The ``StepRunContext`` of a step inside a body: the frame's input and results, the task's
    flow_env and secrets, and the in-task attempt counter."""

    extra_names: Mapping[str, Any] = MappingProxyType({})

    def __init__(self, base: TaskServices, frame: Frame, previous: Any, *, last_attempt: bool) -> None:
        self._base = base
        self._frame = frame
        self._place = frame.place
        self._previous = previous
        self._last_attempt = last_attempt

    @property
    def flow_input(self) -> Any:
        return self._frame.flow_input

    @property
    def flow_env(self) -> Mapping[str, Any]:
        return self._base.flow_env

    @property
    def is_last_attempt(self) -> bool:
        return self._last_attempt

    def previous_result(self) -> Any:
        return self._previous

    def result_of(self, step_id: str) -> Any:
        return self._frame.result_of(step_id)


def run_body(modules: list[FlowModule], frame: Frame, base: TaskServices, run_step: RunStep) -> BodyOutcome:
    """Run a module list in order, retrying each step in the task as its ``retry`` says."""
    previous: Any = frame.flow_input  # the body's args (spec 3.3)
    last_kind = None
    for module in modules:
        outcome = _run_with_retries(module, frame, previous, base, run_step)
        if outcome.kind is OutcomeKind.FAILED:
            return BodyOutcome(BodyKind.FAILED, outcome.result)
        if outcome.kind is OutcomeKind.ERROR_STOP:
            return BodyOutcome(BodyKind.FAILED, outcome.result, stop=outcome)
        frame.results[module.id] = outcome.result
        previous = outcome.result
        last_kind = outcome.kind
        if outcome.kind in ENDS_FLOW:
            return BodyOutcome(BodyKind.STOPPED, outcome.result, stop=outcome)
        if module.sleep is not None:
            # Inside a task there is no worker slot to give back: the wait is a plain sleep.
            time.sleep(sleep_seconds(module.sleep, _FrameContext(base, frame, previous, last_attempt=True)))
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        return BodyOutcome(BodyKind.FAILED, previous)  # a body ending on an error has failed (spec 5.2)
    return BodyOutcome(BodyKind.COMPLETED, previous)


def _run_with_retries(
    module: FlowModule, frame: Frame, previous: Any, base: TaskServices, run_step: RunStep
) -> StepOutcome:
    retry = module.retry
    max_retries = retry.max_retries if retry is not None else 0
    for attempt in range(max_retries + 1):
        ctx = _FrameContext(base, frame, previous, last_attempt=attempt == max_retries)
        outcome = run_step(module, ctx)
        if outcome.kind is not OutcomeKind.FAILED or not outcome.retryable or attempt == max_retries:
            return outcome
        assert retry is not None
        delay = retry_interval(retry, attempt) or 0.0
        time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Containers


def run_container(
    module: FlowModule, frame: Frame, previous: Any, base: TaskServices, run_step: RunStep, scope: EvalScope
) -> StepOutcome:
    """Run a loop or branch module to its ``StepOutcome``."""
    value = module.value
    if isinstance(value, ForloopFlow):
        return _for_loop(module, value, frame, previous, base, run_step, scope)
    if isinstance(value, WhileloopFlow):
        return _while_loop(module, value, frame, base, run_step, scope)
    if isinstance(value, BranchOne):
        return _branch_one(module, value, frame, previous, base, run_step, scope)
    if isinstance(value, PathFlow):
        return _sub_flow(module, value, base, run_step, scope)
    assert isinstance(value, BranchAll)
    return _branch_all(module, value, frame, previous, base, run_step, scope)


def _for_loop(
    module: FlowModule,
    loop: ForloopFlow,
    frame: Frame,
    previous: Any,
    base: TaskServices,
    run_step: RunStep,
    scope: EvalScope,
) -> StepOutcome:
    items = loop_items(module, loop, scope)
    if not isinstance(items, list):
        return items  # the flow error of an iterator that failed or is not an array

    def iteration(index: int) -> BodyOutcome:
        inputs = iteration_input(frame.flow_input, index, items[index])
        return run_body(loop.modules, frame.child(inputs, f"{module.id}[{index}]"), base, run_step)

    if loop.parallel:
        try:
            width = loop_width(loop.parallelism, scope, len(items))
        except ExpressionError as exc:
            return flow_error(module, exc.error_object())
        return loop_outcome(module, loop, _in_parallel(iteration, len(items), width), scope)
    with _Progress(base, module) as progress:
        return loop_outcome(module, loop, _sequential(iteration, len(items), progress), scope)


def _sequential(run: Callable[[int], BodyOutcome], count: int, progress: _Progress) -> Iterable[BodyOutcome]:
    """Iterations one after another, lazily (a break stops them), resuming after checkpointed ones."""
    done = progress.load()[:count]
    yield from done
    for index in range(len(done), count):
        body = run(index)
        done.append(body)
        progress.save(done)
        yield body


def _while_loop(
    module: FlowModule,
    loop: WhileloopFlow,
    frame: Frame,
    base: TaskServices,
    run_step: RunStep,
    scope: EvalScope,
) -> StepOutcome:
    """Runs until a ``stop_after_if`` (on the loop or a body step) or a failure ends it (spec 4.6).
    Finished iterations are checkpointed, so a task that dies mid-loop resumes after them."""
    progress = _Progress(base, module)
    with progress:
        done = progress.load()
        results = [body.result for body in done]
        index = len(done)
        while True:
            body = run_body(
                loop.modules,
                frame.child(iteration_input(frame.flow_input, index, index), f"{module.id}[{index}]"),
                base,
                run_step,
            )
            results.append(body.result)
            index += 1
            if body.kind is BodyKind.FAILED:
                if loop.skip_failures:
                    progress.save([*done, body])
                    done = [*done, body]
                    continue
                return StepOutcome(
                    OutcomeKind.FAILED, results, f"while-loop {module.id!r}: iteration {index - 1} failed"
                )
            if body.kind is BodyKind.STOPPED or break_after_iteration(
                module.stop_after_if, body.result, scope
            ):
                break
            done = [*done, body]
            progress.save(done)
        return after_all_iterations(module, results, scope)


@dataclass(frozen=True, slots=True)
class _PlacedStore:
    """The task's state store seen from inside a body: keys carry the body's place, so the same
    loop nested in iteration 2 and in iteration 3 of an outer loop keeps two checkpoints."""

    store: CheckpointStore
    place: str

    def get(self, key: str) -> Any:
        return self.store.get(f"{key}@{self.place}")

    def set(self, key: str, value: Any) -> None:
        self.store.set(f"{key}@{self.place}", value)

    def delete(self, key: str) -> None:
        self.store.delete(f"{key}@{self.place}")


class _Progress:
    """Checkpoints of a loop's finished iterations in the task's state store (Airflow 3.3), for a
    loop that is a task of its own. They let a task that died mid-loop (worker lost, process
    killed) resume after its finished iterations on its next try; every ending the flow sees
    (success, failure, stop) deletes them, so a retry after a failure re-runs the loop from
    iteration 0 as Windmill does, and a cleared task starts afresh."""

    def __init__(self, base: TaskServices, module: FlowModule) -> None:
        self._store = base.task_state_store
        self._key = f"openflow_iterations__{module.id}"

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Kept when the task is being killed (a BaseException such as termination): that try resumes.
        if self._store is not None and (exc_type is None or issubclass(exc_type, Exception)):
            self._store.delete(self._key)

    def load(self) -> list[BodyOutcome]:
        saved = self._store.get(self._key) if self._store is not None else None
        if not isinstance(saved, list):
            return []
        return [BodyOutcome(BodyKind(kind), result) for kind, result in saved]

    def save(self, bodies: list[BodyOutcome]) -> None:
        if self._store is not None:
            self._store.set(self._key, [[body.kind.value, body.result] for body in bodies])


def _branch_one(
    module: FlowModule,
    value: BranchOne,
    frame: Frame,
    previous: Any,
    base: TaskServices,
    run_step: RunStep,
    scope: EvalScope,
) -> StepOutcome:
    choice = choose_branch(module, value, previous, scope)
    if not isinstance(choice, int):
        return choice  # a predicate failed: the flow fails
    modules = branch_modules(value, choice)
    body_frame = frame.child(frame.flow_input, f"{module.id}[{choice}]")
    body = run_body(modules, body_frame, base, run_step) if modules else None
    return branch_one_outcome(module, choice, body, previous)


def _branch_all(
    module: FlowModule,
    value: BranchAll,
    frame: Frame,
    previous: Any,
    base: TaskServices,
    run_step: RunStep,
    scope: EvalScope,
) -> StepOutcome:
    def run_branch(index: int) -> BodyOutcome:
        body_frame = frame.child(frame.flow_input, f"{module.id}[{index}]")
        return run_body(value.branches[index].modules, body_frame, base, run_step)

    count = len(value.branches)
    if value.parallel:
        bodies: Iterable[BodyOutcome] = _in_parallel(run_branch, count, count)
    else:
        bodies = (run_branch(index) for index in range(count))  # lazily: a failure or stop ends it
    return branch_all_outcome(module, value, bodies, previous)


class _ChildFlowBase(_TaskServices):
    """What a sub-flow's steps get from the task: its own ``flow_env`` (the caller's when it has
    none, spec 1.2), the task's variables and resources."""

    def __init__(self, base: TaskServices, flow_env: Mapping[str, Any]) -> None:
        self._base = base
        self._flow_env = flow_env

    @property
    def flow_env(self) -> Mapping[str, Any]:
        return self._flow_env


def _sub_flow(
    module: FlowModule, value: PathFlow, base: TaskServices, run_step: RunStep, scope: EvalScope
) -> StepOutcome:
    """A ``type: flow`` step, run inside this task (spec 4.3): the child gets the evaluated
    arguments as its input (with its schema's defaults), sees none of the caller's results, has its
    own ``flow_env`` and failure module, and an early stop inside it only ends the child."""
    child = value.resolved
    if child is None:  # check_supported reports this at load time
        return flow_error(
            module, {"error": {"name": "SubFlowNotFound", "message": f"sub-flow {value.path!r}"}}
        )
    try:
        args = evaluate_transforms(value.input_transforms, scope)
    except ExpressionError as exc:
        error = exc.error_object()
        return StepOutcome(OutcomeKind.FAILED, error, f"sub-flow {value.path!r}: {error['error']['message']}")
    inputs = flow_input_from(args, child.schema)
    child_base = _ChildFlowBase(base, child.value.flow_env or base.flow_env)
    frame = Frame(flow_input=inputs, lookup=lambda step_id: None)
    label = f"sub-flow {value.path!r}"
    if child.value.skip_expr:
        try:
            skipped = evaluate_predicate(child.value.skip_expr, with_names(scope, flow_input=inputs))
        except ExpressionError as exc:
            return flow_error(module, exc.error_object())
        if skipped:
            return StepOutcome(OutcomeKind.SUCCESS, inputs, f"{label}: skipped by its skip_expr")
    body = run_body(child.value.modules, frame, child_base, run_step)
    if body.kind is not BodyKind.FAILED:
        return StepOutcome(OutcomeKind.SUCCESS, body.result, f"{label}: {body.kind}")
    handler = child.value.failure_module
    if handler is None:
        return StepOutcome(OutcomeKind.FAILED, body.result, f"{label} failed")
    outcome = _run_with_retries(handler, frame, body.result, child_base, run_step)
    verdict = with_failure_module(
        FlowVerdict("failure", body.result, f"{label} failed"), outcome.kind, outcome.result
    )
    kind = OutcomeKind.SUCCESS if verdict.status == "success" else OutcomeKind.FAILED
    return StepOutcome(kind, verdict.result, verdict.message)


# ---------------------------------------------------------------------------------------------
# Helpers


def _in_parallel(run: Callable[[int], BodyOutcome], count: int, width: int) -> list[BodyOutcome]:
    """Run bodies 0..count-1 at the same time (at most ``width`` at once) in threads of this task,
    so that they really overlap, as Windmill's parallel jobs do; outcomes come back in index order."""
    if count == 0:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(width, count, _MAX_THREADS))) as pool:
        return list(pool.map(run, range(count)))
