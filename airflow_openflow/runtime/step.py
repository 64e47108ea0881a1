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
import enum
import json
import logging
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from airflow_openflow.runtime.containers import Frame, is_container, run_container
from airflow_openflow.runtime.errors import ExpressionError, StepError, error_object, exception_text
from airflow_openflow.runtime.expressions import (
    EvalScope,
    evaluate,
    evaluate_predicate,
    evaluate_transforms,
)
from airflow_openflow.runtime.shared_dir import shared_directory
from airflow_openflow.spec.model import (
    BranchOne,
    FlowModule,
    Identity,
    InputTransform,
    PathFlow,
    RawScript,
    StopAfterIf,
)

log = logging.getLogger(__name__)


class OutcomeKind(enum.StrEnum):
    SUCCESS = "success"
    SKIPPED = "skipped"  # skip_if was true: the step behaves as an identity
    MOCKED = "mocked"
    STOPPED = "stopped"  # stop_after_if true, plain: the flow ends successfully here
    STOPPED_SKIPPED = "stopped_skipped"  # stop_after_if with skip_if_stopped: ends, labelled skipped
    ERROR_STOP = "error_stop"  # stop_after_if with error_message: the flow fails (EarlyStopError)
    CONTINUED_ERROR = "continued_error"  # failed, but continue_on_error: the error object is the result
    FAILED = "failed"
    CUT = "cut"  # not run: an earlier step of its loop iteration stopped it (parallel loop on tasks)


def outcome_kind(value: str | None) -> OutcomeKind | None:
    """The ``OutcomeKind`` recorded in XCom, or None for a step that did not finish."""
    return OutcomeKind(value) if value else None


#: Outcomes after which the flow does not go on to the next step.
ENDS_FLOW = frozenset({OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED, OutcomeKind.ERROR_STOP})


@dataclass(frozen=True, slots=True)
class StepOutcome:
    kind: OutcomeKind
    result: Any  # what ``results.<id>`` reads; the error object for failures
    message: str = ""  # one line for the task log
    retryable: bool = True  # False for failures a retry cannot fix (a throwing predicate, a stop)


class StepRunContext(Protocol):
    """What a step needs from the run it belongs to."""

    @property
    def flow_input(self) -> Any: ...

    @property
    def flow_env(self) -> Mapping[str, Any]: ...

    @property
    def is_last_attempt(self) -> bool: ...

    def previous_result(self) -> Any: ...

    def result_of(self, step_id: str) -> Any: ...

    def variable(self, path: str) -> Any: ...

    def resource(self, path: str) -> Any: ...


@dataclass(slots=True)
class _Scope:
    """Builds expression scopes lazily: the previous result is fetched once, when first needed."""

    ctx: StepRunContext
    _previous: Any = field(default=None)
    _have_previous: bool = False

    def previous(self) -> Any:
        if not self._have_previous:
            self._previous = self.ctx.previous_result()
            self._have_previous = True
        return self._previous

    def build(self, **overrides: Any) -> EvalScope:
        scope = EvalScope(
            flow_input=self.ctx.flow_input,
            previous_result=self.previous(),
            results=self.ctx.result_of,
            flow_env=self.ctx.flow_env,
            variable=self.ctx.variable,
            resource=self.ctx.resource,
            extra=getattr(self.ctx, "extra_names", None) or {},
        )
        return dataclasses.replace(scope, **overrides) if overrides else scope


ScriptRunner = Callable[..., Any]


def after_success(module: FlowModule, value: Any, ctx: StepRunContext) -> StepOutcome:
    """What follows a step that succeeded (its ``stop_after_if``), for steps finished elsewhere."""
    return _after_success(module, value, _Scope(ctx))


def step_scope(ctx: StepRunContext, **overrides: Any) -> EvalScope:
    """The expression scope of a step's context (``result`` and the like as overrides)."""
    return _Scope(ctx).build(**overrides)


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
    scope = _Scope(ctx)
    try:
        outcome = _run_step(module, ctx, scope, script_runner)
    except Exception as exc:
        outcome = _failed(module, exc)
    if outcome.kind is OutcomeKind.FAILED and outcome.retryable:
        return _after_failure(module, outcome, ctx, scope)
    return outcome


def _run_step(
    module: FlowModule, ctx: StepRunContext, scope: _Scope, script_runner: ScriptRunner | None
) -> StepOutcome:
    early = _before_running(module, scope)
    if early is not None:
        return early

    if is_container(module):
        frame = Frame(flow_input=ctx.flow_input, lookup=ctx.result_of)
        previous = scope.previous()
        container_scope = scope.build(result=previous)
        outcome: StepOutcome = run_container(module, frame, previous, ctx, run_step, container_scope)
        if outcome.kind is OutcomeKind.SUCCESS and isinstance(module.value, BranchOne | PathFlow):
            outcome = _after_success(module, outcome.result, scope)  # on loops it is the break test
    else:
        try:
            value = _execute(module, scope, script_runner)
        except (StepError, ExpressionError) as exc:
            return _failed(module, exc)
        outcome = _after_success(module, value, scope)
    return outcome


def _failed(module: FlowModule, exc: Exception) -> StepOutcome:
    """A retryable failure whose result is Windmill's error object for ``exc``."""
    if isinstance(exc, StepError):
        error = exc.error
    elif isinstance(exc, ExpressionError):
        error = exc.error_object()
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


def _before_running(module: FlowModule, scope: _Scope) -> StepOutcome | None:
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
        outcome = _after_success(module, module.mock.return_value, scope)
        if outcome.kind is OutcomeKind.SUCCESS:
            return StepOutcome(OutcomeKind.MOCKED, outcome.result, "mocked: the script did not run")
        return outcome
    return None


def start_sub_flow(module: FlowModule, ctx: StepRunContext) -> StepOutcome | dict[str, Any]:
    """The first half of a ``type: flow`` step whose child runs elsewhere (its own DAG run):
    the step's outcome when it ends before the child starts (``skip_if``, ``mock``, arguments that
    fail to evaluate), else the child's arguments."""
    scope = _Scope(ctx)
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
    scope = _Scope(ctx)
    assert isinstance(module.value, PathFlow)
    if succeeded:
        return _after_success(module, result, scope)
    outcome = StepOutcome(OutcomeKind.FAILED, result, f"sub-flow {module.value.path!r} failed")
    return _after_failure(module, outcome, ctx, scope)


def _after_failure(
    module: FlowModule, outcome: StepOutcome, ctx: StepRunContext, scope: _Scope
) -> StepOutcome:
    """Retries first (while attempts are left and ``retry_if`` allows), then ``continue_on_error``."""
    if not ctx.is_last_attempt and _retry_allowed(module, outcome.result, scope):
        return outcome
    if module.continue_on_error:
        return StepOutcome(
            OutcomeKind.CONTINUED_ERROR, outcome.result, f"continue_on_error: {outcome.message}"
        )
    return dataclasses.replace(outcome, retryable=False)


def _retry_allowed(module: FlowModule, error: Any, scope: _Scope) -> bool:
    retry_if = module.retry.retry_if if module.retry is not None else None
    if not retry_if:
        return True
    try:
        allowed = evaluate_predicate(retry_if, scope.build(result=error))
    except Exception as exc:  # an ExpressionError, or the host failing to answer
        log.warning("step %s: retry_if failed (%s); not retrying", module.id, exc)
        return False
    if not allowed:
        log.info("step %s: retry_if `%s` is false; not retrying", module.id, retry_if)
    return allowed


def _execute(module: FlowModule, scope: _Scope, script_runner: ScriptRunner | None) -> Any:
    value = module.value
    if isinstance(value, Identity):
        return scope.previous()
    if isinstance(value, RawScript):
        args = evaluate_transforms(value.input_transforms, scope.build())
        cache_key = _cache_key(module, value, args) if module.cache_ttl else None
        if cache_key is not None:
            hit = _cache_get(scope.ctx, cache_key)
            if hit is not None:
                log.info(
                    "step %s: cache hit (cache_ttl %g s): the script did not run", module.id, module.cache_ttl
                )
                return hit[0]
        timeout_s = _timeout_seconds(module, scope)
        # Values from Connections (password, sensitive keys) and sensitive-named Variables are masked.
        log.info("step %s: arguments %s", module.id, _preview(args))
        runner = script_runner or _default_script_runner
        workdir = Path(tempfile.mkdtemp(prefix=f"openflow-{module.id}-"))
        try:
            # same_worker: the run's ./shared folder in workdir/shared, stored back after the script
            shared = getattr(scope.ctx, "shared_location", None)
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
            _cache_set(scope.ctx, cache_key, result, module.cache_ttl)
        return result
    # The loader rejects what this release cannot run; reaching here is a bug, not a user error.
    raise StepError(
        error_object(
            "NotSupported", f"module type {value.type!r} cannot run as a single step", step_id=module.id
        )
    )


@contextlib.contextmanager
def _wmill_for(module: FlowModule, value: RawScript, ctx: StepRunContext) -> Iterator[None]:
    """A python3 step's ``wmill`` session (runtime/wmill_session.py): the SDK answered by the context's
    backend, and workflow-as-code checkpoints in its state store. Checkpoints are kept when the
    script fails with attempts left (or the process is being killed), for the next try to replay."""
    if value.language != "python3":
        yield
        return
    from airflow_openflow.runtime.wmill_session import WmillSession, wmill_session

    make_backend = getattr(ctx, "wmill_backend", None)
    backend = make_backend(module) if make_backend is not None else None
    session = WmillSession(
        backend, module.id, value.content, store=getattr(ctx, "iteration_store", None) if backend else None
    )
    environment = _windmill_environment(module, session)
    with wmill_session(session, environment=environment):
        try:
            yield
        except Exception:
            session.finish(succeeded=False, final=ctx.is_last_attempt)
            raise
        session.finish(succeeded=True, final=True)


def _windmill_environment(module: FlowModule, session: Any) -> dict[str, str]:
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
    import hashlib

    material = json.dumps([module.id, value.language, value.content, args], sort_keys=True, default=repr)
    return hashlib.sha256(material.encode()).hexdigest()


def _cache_get(ctx: StepRunContext, key: str) -> tuple[Any] | None:
    getter = getattr(ctx, "cache_get", None)
    return getter(key) if getter is not None else None  # type: ignore[no-any-return]


def _cache_set(ctx: StepRunContext, key: str, result: Any, ttl: float) -> None:
    setter = getattr(ctx, "cache_set", None)
    if setter is not None:
        setter(key, result, ttl)


_OWN_RESULT_IS_PREVIOUS = object()


def sleep_seconds(
    transform: InputTransform, ctx: StepRunContext, *, result: Any = _OWN_RESULT_IS_PREVIOUS
) -> float:
    """A step's ``sleep``, evaluated after it ran: ``result`` and ``previous_result`` are the
    step's own result (spec 2): ``result``, else ``ctx.previous_result()`` (for a context placed
    after the step). A value that is not a positive number means no sleep."""
    if transform.kind == "static":
        value = transform.value
    else:
        own = ctx.previous_result() if result is _OWN_RESULT_IS_PREVIOUS else result
        value = evaluate(transform.expr or "", _Scope(ctx).build(result=own, previous_result=own))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return 0.0


def _timeout_seconds(module: FlowModule, scope: _Scope) -> float | None:
    """``timeout`` (static or an expression): seconds the script may run; none when absent or 0."""
    transform = module.timeout
    if transform is None:
        return None
    if transform.kind == "static":
        value = transform.value
    else:
        value = evaluate(transform.expr or "", scope.build(result=scope.previous()))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _preview(value: Any, limit: int = 2000) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _default_script_runner(language: str, content: str, args: dict[str, Any], **kwargs: Any) -> Any:
    from airflow_openflow.runtime.scripts import run_script

    return run_script(language, content, args, **kwargs)


def _after_success(module: FlowModule, value: Any, scope: _Scope) -> StepOutcome:
    log.info("step %s: result %s", module.id, _preview(value))
    stop = module.stop_after_if
    if stop is None:
        return StepOutcome(OutcomeKind.SUCCESS, value)
    try:
        stopped = evaluate_predicate(stop.expr, scope.build(result=value, previous_result=value))
    except ExpressionError as exc:
        return _predicate_failure(module, "stop_after_if", exc)
    if not stopped:
        return StepOutcome(OutcomeKind.SUCCESS, value)
    return stop_outcome(stop, value)


def stop_outcome(stop: StopAfterIf, value: Any) -> StepOutcome:
    """The outcome of a true ``stop_after_if`` / ``stop_after_all_iters_if`` (spec 2.1)."""
    if stop.error_message is not None:
        message = stop.error_message or f"stop after if: {stop.expr}"
        extra = {"result": value} if stop.error_include_result else {}
        return StepOutcome(
            OutcomeKind.ERROR_STOP,
            {"error": {"name": "EarlyStopError", "message": message, **extra}},
            f"`{stop.expr}` is true: the flow fails with EarlyStopError: {message}",
            retryable=False,
        )
    if stop.skip_if_stopped:
        return StepOutcome(
            OutcomeKind.STOPPED_SKIPPED, value, f"`{stop.expr}` is true: the flow ends (skipped)"
        )
    return StepOutcome(OutcomeKind.STOPPED, value, f"`{stop.expr}` is true: the flow ends here")


def _predicate_failure(module: FlowModule, what: str, exc: ExpressionError) -> StepOutcome:
    # A throwing predicate is a flow-level error in Windmill (spec 3.5): no retry of the step.
    error = exc.error_object()
    error["error"]["step_id"] = module.id
    return StepOutcome(OutcomeKind.FAILED, error, f"{what} failed: {exc}", retryable=False)


@dataclass(frozen=True, slots=True)
class FlowVerdict:
    """The flow's status and result, as Windmill defines them, from the outcomes of its steps."""

    status: str  # "success" | "failure"
    result: Any
    message: str
    skipped: bool = False  # a stop with skip_if_stopped


def flow_verdict(
    steps: list[tuple[str, OutcomeKind | None]],
    result_of: Callable[[str], Any],
    flow_input: Any,
) -> FlowVerdict:
    """``steps`` are the top-level steps in order, each with its outcome (None if it never finished).
    Only the decisive step's result is fetched through ``result_of``."""
    last_id: str | None = None  # None: an empty flow returns its input (spec 1.2)
    last_kind: OutcomeKind | None = None
    for step_id, kind in steps:
        if kind is None:
            # Not finished and no earlier stop: it failed without reporting (killed, marked failed in
            # the UI) or never ran because an earlier task did. Either way the flow did not complete.
            message = f"step {step_id!r} did not complete; see its task log in Airflow"
            return FlowVerdict(
                "failure",
                {"error": {"name": "StepDidNotComplete", "message": message, "step_id": step_id}},
                message,
            )
        if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
            return FlowVerdict("failure", result_of(step_id), f"step {step_id!r} failed")
        if kind in (OutcomeKind.STOPPED, OutcomeKind.STOPPED_SKIPPED):
            return FlowVerdict(
                "success",
                result_of(step_id),
                f"stopped early after step {step_id!r}",
                skipped=kind is OutcomeKind.STOPPED_SKIPPED,
            )
        last_id, last_kind = step_id, kind
    if last_id is None:
        return FlowVerdict("success", flow_input, "empty flow: the result is the flow input")
    if last_kind is OutcomeKind.CONTINUED_ERROR:
        # continue_on_error on the last step still leaves the flow failed (spec 5.2).
        return FlowVerdict("failure", result_of(last_id), f"last step {last_id!r} failed (continue_on_error)")
    return FlowVerdict("success", result_of(last_id), "flow completed")


def error_name_value(failed_result: Any) -> dict[str, Any] | None:
    """The ``error`` name of a failure module's expressions (spec 3.3): the failed step's error
    object, or for a failed loop / branchall array one error listing its failed slots."""
    if isinstance(failed_result, dict) and isinstance(failed_result.get("error"), dict):
        return dict(failed_result["error"])
    if isinstance(failed_result, list):
        errors = [
            r["error"] for r in failed_result if isinstance(r, dict) and isinstance(r.get("error"), dict)
        ]
        if errors:
            message = "; ".join(f"{e.get('name')}: {e.get('message')}" for e in errors)
            return {"name": "MultipleErrors", "message": message, "errors": errors}
    return None


def with_failure_module(verdict: FlowVerdict, kind: OutcomeKind | None, result: Any) -> FlowVerdict:
    """The flow's verdict once the failure module ran (spec 5.1): its result is the flow result,
    the flow stays failed unless that result carries ``recover: true``, and a failure module that
    fails makes its own error the result."""
    if verdict.status != "failure" or kind is None:
        return verdict
    if kind in (OutcomeKind.FAILED, OutcomeKind.ERROR_STOP):
        return FlowVerdict("failure", result, f"{verdict.message}; the failure module failed too")
    if isinstance(result, dict) and result.get("recover") is True:
        return FlowVerdict("success", result, f"{verdict.message}; the failure module recovered the flow")
    return FlowVerdict("failure", result, f"{verdict.message}; the failure module ran")
