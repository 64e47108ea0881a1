"""What one step does when it runs: the single place for Windmill's step semantics.

``run_step`` is called by every operator that executes a step. It knows nothing of Airflow: the
caller hands it a ``StepRunContext`` (flow input, earlier results, secrets, a scratch folder) and
maps the ``StepOutcome`` it returns onto task states (operators/step.py).

Order of evaluation, as in Windmill's engine (spec sections 2, 2.1, 3, 5.2):
``skip_if`` -> ``mock`` -> input transforms -> script -> ``stop_after_if``; on failure, retries
first, then ``continue_on_error``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_openflow.runtime.container_rules import is_container
from airflow_openflow.runtime.container_runner import Frame, run_container
from airflow_openflow.runtime.errors import ExpressionError, StepError, error_object, exception_text
from airflow_openflow.runtime.expressions import evaluate_predicate, evaluate_transform, evaluate_transforms
from airflow_openflow.runtime.log_text import json_preview
from airflow_openflow.runtime.outcomes import OutcomeKind, StepOutcome, stop_outcome
from airflow_openflow.runtime.shared_dir import shared_directory
from airflow_openflow.runtime.step_context import StepRunContext, StepScope, static_scope
from airflow_openflow.spec.languages import SQL_LANGUAGES
from airflow_openflow.spec.model import BranchOne, FlowModule, Identity, PathFlow, PathScript, RawScript

if TYPE_CHECKING:
    from airflow_openflow.runtime.wmill_session import WmillSession

log = logging.getLogger(__name__)


ScriptRunner = Callable[..., Any]

#: The languages whose scripts get a ``wmill`` session: Python's SDK, TypeScript's client.
WMILL_LANGUAGES = frozenset({"python3", "deno", "bun", "nativets"})


def apply_stop_after_if(module: FlowModule, value: Any, ctx: StepRunContext) -> StepOutcome:
    """The outcome of a step that succeeded with ``value`` once its ``stop_after_if`` is applied,
    for steps finished elsewhere (a branchone whose branch ran on tasks)."""
    return _outcome_of_success(module, value, StepScope(ctx))


def run_step(
    module: FlowModule, ctx: StepRunContext, *, script_runner: ScriptRunner | None = None
) -> StepOutcome:
    """Run one step to its outcome. Never raises for a step failure: the outcome says it.

    Nor for any other ``Exception`` inside the step (a host error while fetching a result, a bug of
    this runtime): it becomes the step's error object ``{name, message, stack}`` like a script's
    exception, so retries, ``continue_on_error`` and the failure module see it, instead of a task
    that crashed without a result. ``BaseException`` s pass through: Airflow's task timeout,
    termination and deferral are ``BaseException`` s in Airflow 3, as are ``KeyboardInterrupt``
    and ``SystemExit`` of the task process itself.
    """
    scope = StepScope(ctx)
    try:
        outcome = _run_step(module, ctx, scope, script_runner)
    except Exception as exc:
        outcome = _failed(module, exc, ctx)
    if outcome.kind is OutcomeKind.FAILED and outcome.retryable:
        return _after_failure(module, outcome, ctx, scope)
    return outcome


def _run_step(
    module: FlowModule, ctx: StepRunContext, scope: StepScope, script_runner: ScriptRunner | None
) -> StepOutcome:
    early = _before_running(module, scope)
    if early is not None:
        return early

    if is_container(module):
        frame = Frame(flow_input=ctx.flow_input, lookup=ctx.result_of)
        previous = scope.previous()
        container_scope = scope.build(result=previous)
        outcome = run_container(module, frame, previous, ctx, run_step, container_scope)
        if outcome.kind is OutcomeKind.SUCCESS and isinstance(module.value, BranchOne | PathFlow):
            outcome = _outcome_of_success(module, outcome.result, scope)  # on loops it is the break test
    else:
        try:
            value = _execute(module, scope, script_runner)
        except (StepError, ExpressionError) as exc:
            return _failed(module, exc, ctx)
        outcome = _outcome_of_success(module, value, scope)
    return outcome


def _failed(module: FlowModule, exc: Exception, ctx: StepRunContext | None = None) -> StepOutcome:
    """A retryable failure whose result is Windmill's error object for ``exc``."""
    if isinstance(exc, StepError):
        error = exc.error
    elif isinstance(exc, ExpressionError):
        error = exc.error_object()
        hint = unknown_results_hint(exc.expr, ctx)
        if hint and isinstance(error["error"].get("message"), str):
            error["error"]["message"] += f" ({hint})"
    else:
        # Not the script's and not an expression's: the task log keeps the whole traceback.
        log.error("step %s failed inside the runtime", module.id, exc_info=exc)
        error = error_object(
            type(exc).__name__,
            exception_text(exc),
            stack="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        )
    error["error"].setdefault("step_id", module.id)
    summary = f"{error['error'].get('name')}: {error['error'].get('message')}"
    return StepOutcome(OutcomeKind.FAILED, error, summary)


def unknown_results_hint(expr: str, ctx: Any) -> str:
    """For an expression that failed: the ``results.<id>`` it reads that no step before this one
    has, which read null (``results.totl is null: ...; did you mean 'total'?``), else ``""``.
    Only where the context can tell which ids a step reads (``readable_step_ids``)."""
    readable = getattr(ctx, "readable_step_ids", None)
    if readable is None:
        return ""
    from airflow_openflow.spec.suggest import did_you_mean
    from airflow_openflow.spec.syntax_check import result_references

    ids = set(readable())
    hints = []
    for name in result_references(expr):
        if name not in ids:
            guess = did_you_mean(name, ids)
            hints.append(
                f"results.{name} is null: no step before this one has the id {name!r}"
                + (f"; {guess}" if guess else "")
            )
    return "; ".join(hints)


def _before_running(module: FlowModule, scope: StepScope) -> StepOutcome | None:
    """``skip_if`` and ``mock``: the outcome of a step that ends before it runs, else None."""
    if module.skip_if is not None:
        try:
            skip = evaluate_predicate(module.skip_if.expr, scope.build(result=scope.previous()))
        except ExpressionError as exc:
            return _predicate_failure(module, "skip_if", exc)
        if skip:
            return StepOutcome(
                OutcomeKind.SKIPPED, scope.previous(), f"skip_if `{module.skip_if.expr}` is true"
            )
    if module.mock is not None and module.mock.enabled:
        # A mocked step runs as an identity returning the mock value; what follows a step still applies.
        outcome = _outcome_of_success(module, module.mock.return_value, scope)
        if outcome.kind is OutcomeKind.SUCCESS:
            return StepOutcome(OutcomeKind.MOCKED, outcome.result, "mocked: the script did not run")
        return outcome
    return None


def start_sub_flow(module: FlowModule, ctx: StepRunContext) -> StepOutcome | dict[str, Any]:
    """The first half of a ``type: flow`` step whose child runs elsewhere (its own DAG run):
    the step's outcome when it ends before the child starts (``skip_if``, ``mock``, arguments that
    fail to evaluate), else the child's arguments."""
    scope = StepScope(ctx)
    early = _before_running(module, scope)
    if early is not None:
        return early
    assert isinstance(module.value, PathFlow)
    try:
        return evaluate_transforms(module.value.input_transforms, scope.build())
    except Exception as exc:  # an ExpressionError, a variable that is not there, the host failing
        outcome = _failed(module, exc)
        outcome = dataclasses.replace(outcome, message=f"sub-flow arguments: {outcome.message}")
        return _after_failure(module, outcome, ctx, scope)


def finish_sub_flow(module: FlowModule, ctx: StepRunContext, *, succeeded: bool, result: Any) -> StepOutcome:
    """The second half: the child flow's status and result become the step's outcome, then the
    step's own rules apply (``stop_after_if`` on success; retries and ``continue_on_error`` on
    failure), exactly as for a child run inside the task."""
    scope = StepScope(ctx)
    assert isinstance(module.value, PathFlow)
    if succeeded:
        return _outcome_of_success(module, result, scope)
    outcome = StepOutcome(OutcomeKind.FAILED, result, f"sub-flow {module.value.path!r} failed")
    return _after_failure(module, outcome, ctx, scope)


def _after_failure(
    module: FlowModule, outcome: StepOutcome, ctx: StepRunContext, scope: StepScope
) -> StepOutcome:
    """Retries first (while attempts are left and ``retry_if`` allows), then ``continue_on_error``."""
    if not ctx.is_last_attempt and _retry_allowed(module, outcome.result, scope):
        return outcome
    if module.continue_on_error:
        return StepOutcome(
            OutcomeKind.CONTINUED_ERROR, outcome.result, f"continue_on_error: {outcome.message}"
        )
    return dataclasses.replace(outcome, retryable=False)


def _retry_allowed(module: FlowModule, error: Any, scope: StepScope) -> bool:
    retry_if = module.retry.retry_if if module.retry is not None else None
    if not retry_if:
        return True
    try:
        allowed = evaluate_predicate(retry_if, scope.of_failure(error))
    except Exception as exc:  # an ExpressionError, or the host failing to answer
        log.warning("step %s: retry_if failed (%s); not retrying", module.id, exc)
        return False
    if not allowed:
        log.info("step %s: retry_if `%s` is false; not retrying", module.id, retry_if)
    return allowed


def _execute(module: FlowModule, scope: StepScope, script_runner: ScriptRunner | None) -> Any:
    value = module.value
    if isinstance(value, Identity):
        return scope.previous()
    if isinstance(value, PathScript):  # a hub script with no vendored copy (spec/scripts.py)
        value = _hub_script(module, value)
    if isinstance(value, RawScript):
        args = _arguments(value, scope)
        cache_key = _cache_key(module, value, args) if module.cache_ttl else None
        if cache_key is not None:
            hit = scope.ctx.cache_get(cache_key)
            if hit is not None:
                log.info(
                    "step %s: cache hit (cache_ttl %g s): the script did not run", module.id, module.cache_ttl
                )
                return hit[0]
        timeout_s = _timeout_seconds(module, scope)
        # Values from Connections (password, sensitive keys) and sensitive-named Variables are masked.
        log.info("step %s: arguments %s", module.id, json_preview(args))
        runner = script_runner or _default_script_runner
        workdir = Path(tempfile.mkdtemp(prefix=f"openflow-{module.id}-"))
        try:
            # same_worker: the run's ./shared folder in workdir/shared, stored back after the script
            shared = scope.ctx.shared_location
            with _wmill_for(module, value, scope.ctx), shared_directory(workdir, shared):
                result = runner(
                    value.language,
                    value.content,
                    args,
                    step_id=module.id,
                    workdir=workdir,
                    timeout_s=timeout_s,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if cache_key is not None and module.cache_ttl:
            scope.ctx.cache_set(cache_key, result, module.cache_ttl)
        return result
    # The loader rejects what this release cannot run; reaching here is a bug, not a user error.
    raise StepError(
        error_object(
            "NotSupported", f"module type {value.type!r} cannot run as a single step", step_id=module.id
        )
    )


def _hub_script(module: FlowModule, value: PathScript) -> RawScript:
    """The code of a hub script step, fetched now: never while the DAG file is parsed."""
    from airflow_openflow.runtime.hub import resolve_hub_script

    return resolve_hub_script(value, step_id=module.id)


def _arguments(value: RawScript, scope: StepScope) -> dict[str, Any]:
    """The step's evaluated arguments. A SQL step's ``database`` given as a static ``$res:<path>``
    stays that string: the runner opens the Airflow Connection of that path through the provider's
    hook, with all of the Connection's settings (runtime/scripts/sql.py)."""
    transforms = value.input_transforms
    database = transforms.get("database")
    if (
        value.language in SQL_LANGUAGES
        and database is not None
        and database.kind == "static"
        and isinstance(database.value, str)
        and database.value.startswith("$res:")
    ):
        rest = {name: t for name, t in transforms.items() if name != "database"}
        return {"database": database.value, **evaluate_transforms(rest, scope.build())}
    return evaluate_transforms(transforms, scope.build())


@contextlib.contextmanager
def _wmill_for(module: FlowModule, value: RawScript, ctx: StepRunContext) -> Iterator[None]:
    """The ``wmill`` session of a python3 or TypeScript step (runtime/wmill_session.py): the SDK
    answered by the context's backend (a TS script reaches it through runtime/wmill_bridge.py), and
    workflow-as-code checkpoints in its state store. Checkpoints are kept when the script fails
    with attempts left (or the process is being killed), for the next try to replay."""
    if value.language not in WMILL_LANGUAGES:
        yield
        return
    from airflow_openflow.runtime.wmill_context import wmill_session
    from airflow_openflow.runtime.wmill_session import WmillSession

    backend = ctx.wmill_backend(module)
    session = WmillSession(backend, module.id, value.content, store=ctx.task_state_store if backend else None)
    environment = _windmill_environment(module, session)
    session.environment.update(environment)
    with wmill_session(session, environment=environment):
        try:
            yield
        except Exception:
            session.finish(succeeded=False, final=ctx.is_last_attempt)
            raise
        session.finish(succeeded=True, final=True)


def _windmill_environment(module: FlowModule, session: WmillSession) -> dict[str, str]:
    """Windmill's contextual variables (spec 7.4) that have a meaning here."""
    backend = session.backend
    if backend is None:
        return {}
    return {
        "WM_WORKSPACE": backend.workspace,
        "WM_JOB_ID": backend.job_id,
        "WM_ROOT_FLOW_JOB_ID": backend.root_job_id,
        "WM_FLOW_JOB_ID": backend.root_job_id,
        "WM_FLOW_PATH": backend.flow_path,
        "WM_FLOW_STEP_ID": module.id,
        "WM_STATE_PATH": session.state_path,
        "WM_STATE_PATH_NEW": session.state_path,
    }


def _cache_key(module: FlowModule, value: RawScript, args: dict[str, Any]) -> str:
    """Windmill keys a step's cache by the script and its arguments (spec 2: cache_ttl)."""
    material = json.dumps([module.id, value.language, value.content, args], sort_keys=True, default=repr)
    return hashlib.sha256(material.encode()).hexdigest()


def _timeout_seconds(module: FlowModule, scope: StepScope) -> float | None:
    """``timeout`` (static or an expression): seconds the script may run; none when absent or 0."""
    transform = module.timeout
    if transform is None:
        return None
    if transform.kind == "static":
        value = evaluate_transform(transform, static_scope(scope.ctx))
    else:
        value = evaluate_transform(transform, scope.build(result=scope.previous()))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _default_script_runner(language: str, content: str, args: dict[str, Any], **kwargs: Any) -> Any:
    from airflow_openflow.runtime.scripts import run_script

    return run_script(language, content, args, **kwargs)


def _outcome_of_success(module: FlowModule, value: Any, scope: StepScope) -> StepOutcome:
    log.info("step %s: result %s", module.id, json_preview(value))
    stop = module.stop_after_if
    if stop is None:
        return StepOutcome(OutcomeKind.SUCCESS, value)
    try:
        stopped = evaluate_predicate(stop.expr, scope.of_own_result(value))
    except ExpressionError as exc:
        return _predicate_failure(module, "stop_after_if", exc)
    if not stopped:
        return StepOutcome(OutcomeKind.SUCCESS, value)
    return stop_outcome(stop, value)


def _predicate_failure(module: FlowModule, what: str, exc: ExpressionError) -> StepOutcome:
    # A throwing predicate is a flow-level error in Windmill (spec 3.5): no retry of the step.
    error = exc.error_object()
    error["error"]["step_id"] = module.id
    return StepOutcome(OutcomeKind.FAILED, error, f"{what} failed: {exc}", retryable=False)
