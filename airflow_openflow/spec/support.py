"""What this release can execute. A valid document may still use constructs that are not built yet.

Errors say ``not supported yet: <construct>`` and name the issue that will bring it; settings that
are accepted but have no effect yet are warnings. Edit the tables below as features land.
"""

from __future__ import annotations

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.hub import hub_path_problem, is_hub_path
from airflow_openflow.spec.languages import (
    missing_runtime,
    runnable_languages,
    unsupported_language_message,
)
from airflow_openflow.spec.locate import join_path, with_lines_from_file
from airflow_openflow.spec.model import (
    AiAgent,
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    InputTransform,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    WhileloopFlow,
    asks_approval,
    iter_modules,
)
from airflow_openflow.spec.scripts import find_script
from airflow_openflow.spec.suggest import language_suggestion
from airflow_openflow.spec.workspace import UnsafePathError

_APPROVALS = (
    "move the approval to a top-level step, or into the body of a top-level for-loop, branchone or "
    "branchall without a retry: approvals run as Airflow human-in-the-loop tasks, which exist only "
    "where steps run as tasks of their own (docs/approvals.md)"
)
_SHARED_DIR = (
    "Windmill does not share ./shared between parallel jobs: make the loop or branchall sequential "
    "if its steps use ./shared (docs/mapping.md, The ./shared directory)"
)
_IGNORED = "it is accepted and ignored for now"
_INSTALL_HINT = "install it where flows load and run (DAG processor and workers), see docs/languages.md"

# Module kinds that parse fine but do not run yet: kind -> (construct, hint).
UNSUPPORTED_TYPES: dict[str, tuple[str, str]] = {}


def check_supported(flow: OpenFlow) -> list[Problem]:
    """Errors for what this release cannot run, warnings for what it accepts but ignores; sub-flows
    are loaded from the repository and checked too."""
    return prepare_flow(flow)[1]


def prepare_flow(flow: OpenFlow) -> tuple[OpenFlow, list[Problem]]:
    """The flow ready to compile (scripts by path inlined, sub-flows loaded), and the problems
    ``check_supported`` reports. Done once per flow at DAG-parse time."""
    from airflow_openflow.spec.scripts import with_scripts_inlined
    from airflow_openflow.spec.subflows import with_subflows_resolved

    resolved, subflow_problems = with_subflows_resolved(with_scripts_inlined(flow))
    return resolved, [*with_lines_from_file(subflow_problems, flow.source.file), *_check_resolved(resolved)]


def _check_resolved(flow: OpenFlow, *, in_task: str = "") -> list[Problem]:
    """``in_task``: for a sub-flow that runs inside its caller's task, where it runs (every step
    of it does too); "" for a flow that runs as a DAG of its own (a sub-flow of a top-level step may:
    compile/flow.py refuses an approval in one that does not)."""
    checker = _Checker(flow)
    for module in flow.value.modules:
        checker.module(module, top_level=True, where=in_task)
    value = flow.value
    if value.failure_module is not None:
        checker.module(value.failure_module, top_level=False, where="in the failure module")
    if value.preprocessor_module is not None:
        checker.module(value.preprocessor_module, top_level=False, where="in the preprocessor")
    if value.same_worker:
        for module in iter_modules(value.modules):
            inner = module.value
            if isinstance(inner, ForloopFlow | BranchAll) and inner.parallel:
                checker.warn(
                    "value.same_worker",
                    f"same_worker: the steps of the parallel {inner.type} {module.id!r} see a copy of "
                    "./shared taken when each starts; their changes are merged per file, the last to "
                    "finish wins",
                    _SHARED_DIR,
                )
    for key in (
        "concurrent_limit",
        "concurrency_key",
        "concurrency_time_window_s",
        "debounce_delay_s",
        "debounce_key",
        "early_return",
    ):
        if getattr(value, key) is not None:
            checker.warn(join_path("value", key), f"'{key}' has no effect yet", _IGNORED)
    if flow.extra.get("timeout") is not None:  # whole-flow timeout, a deployment setting (spec 1.1)
        checker.warn("timeout", "the flow-level 'timeout' has no effect yet", _IGNORED)
    # ``notes``, ``chat_input_enabled`` and ``priority`` have no runtime meaning here: silently ignored.
    return with_lines_from_file(checker.problems, flow.source.file)


class _Checker:
    def __init__(self, flow: OpenFlow) -> None:
        self.flow = flow
        self.file = flow.source.file
        self.problems: list[Problem] = []

    def error(self, path: str, message: str, hint: str) -> None:
        self.problems.append(Problem(message, file=self.file, json_path=path, hint=hint))

    def warn(self, path: str, message: str, hint: str) -> None:
        self.problems.append(Problem(message, file=self.file, json_path=path, hint=hint, severity="warning"))

    def module(self, module: FlowModule, *, top_level: bool, where: str = "") -> None:
        """``where``: for a step that does not run as a task of its own, in what it runs (for the
        message refusing an approval there); "" for a top-level step or a step of a container on
        tasks."""
        self._value(module, top_level=top_level, where=where)
        self._fields(module, where=where)
        # Nested steps are checked too, so the list is complete once containers are supported.
        value = module.value
        if isinstance(value, (ForloopFlow, WhileloopFlow)):
            children = list(value.modules)
        elif isinstance(value, BranchOne):
            children = [m for branch in value.branches for m in branch.modules] + list(value.default)
        elif isinstance(value, BranchAll):
            children = [m for branch in value.branches for m in branch.modules]
        else:
            children = []
        inner = where or ("" if top_level and container_on_tasks(module) else _runs_in_one_task(module))
        for child in children:
            self.module(child, top_level=False, where=inner)

    def _value(self, module: FlowModule, *, top_level: bool, where: str) -> None:
        value = module.value
        type_path = join_path(value.json_path, "type")
        if isinstance(value, RawScript):
            if value.language not in runnable_languages():
                guess = language_suggestion(value.language)  # a misspelt name (pyhton3)
                self.error(
                    join_path(value.json_path, "language"),
                    unsupported_language_message(value.language) + (f"; {guess}" if guess else ""),
                    "rewrite the step in a supported language (docs/languages.md)",
                )
            elif (missing := missing_runtime(value.language)) is not None:
                if value.path:  # a script by path, inlined (or a rawscript that names its path)
                    self.error(
                        join_path(value.json_path, "path"), f"script {value.path!r}: {missing}", _INSTALL_HINT
                    )
                else:
                    self.error(join_path(value.json_path, "language"), missing, _INSTALL_HINT)
            for key in ("tag", "concurrent_limit", "concurrency_time_window_s", "custom_concurrency_key"):
                if getattr(value, key) is not None:
                    self.warn(join_path(value.json_path, key), f"'{key}' has no effect yet", _IGNORED)
            if value.lock and value.lock.strip() and not _only_comments(value.lock):
                if value.language in ("deno", "bun", "nativets"):
                    message = (
                        "the lock is not used: the step's imports are resolved when it runs "
                        "(Bun installs bare npm imports, Deno fetches npm:/jsr:/URL imports)"
                    )
                    hint = "pin versions in the import specifiers (docs/languages.md)"
                else:
                    message = (
                        "the lock (dependencies) is not installed: "
                        "steps run in the Airflow worker's environment"
                    )
                    hint = "install the packages it lists in the worker image"
                self.warn(join_path(value.json_path, "lock"), message, hint)
            for name, transform in value.input_transforms.items():
                if transform.kind == "ai":
                    self.error(
                        join_path(join_path(value.json_path, "input_transforms"), name),
                        "not supported: 'ai' input transforms",
                        "give the argument a static value or a javascript expression",
                    )
        elif isinstance(value, PathScript):
            self._path_script(value)
        elif isinstance(value, WhileloopFlow):
            self._while_loop(module, value)
        elif isinstance(value, PathFlow) and value.resolved is not None:
            if where or not top_level:  # the child runs inside this step's task
                in_task = f"in sub-flow {value.path!r}, which runs " + (
                    where or "inside the task of its step (a sub-flow step in a loop or branch)"
                )
            else:
                in_task = ""
            for problem in _check_resolved(value.resolved, in_task=in_task):
                if problem.severity == "error":
                    self.error(
                        join_path(value.json_path, "path"),
                        f"sub-flow {value.path!r}: {problem.format()}",
                        "fix the sub-flow document",
                    )
        elif isinstance(value, AiAgent):
            self.error(
                type_path,
                "not supported: AI agent steps",
                "replace the agent step with a python3 step that calls your model",
            )
        elif value.type in UNSUPPORTED_TYPES:
            construct, hint = UNSUPPORTED_TYPES[value.type]
            self.error(type_path, f"not supported yet: {construct}", hint)

    def _suspend(self, module: FlowModule, *, where: str) -> None:
        """Approval steps run where steps are tasks of their own (an approval task after the step):
        at the top level, and in the bodies of top-level containers on tasks."""
        path = join_path(module.json_path, "suspend")
        if where:
            message = (
                f"not supported yet: an approval step {where}: an Airflow approval task cannot wait "
                "inside another task"
            )
            self.error(path, message, _APPROVALS)

    def _while_loop(self, module: FlowModule, value: WhileloopFlow) -> None:
        """A while-loop has no condition (spec 4.6): it ends on a ``stop_after_if`` or a failure."""
        path = join_path(value.json_path, "modules")
        if not value.modules:
            self.error(
                path, "a while-loop with no steps never ends", "add the steps to repeat, or remove the loop"
            )
            return
        stops = module.stop_after_if is not None or any(
            m.stop_after_if is not None for m in iter_modules(value.modules)
        )
        if not stops:
            self.warn(
                path,
                "this while-loop has no stop_after_if: it ends only when an iteration fails",
                "add stop_after_if to the loop or to a step in it",
            )

    def _path_script(self, value: PathScript) -> None:
        path = join_path(value.json_path, "path")
        hub = is_hub_path(value.path)
        problem = hub_path_problem(value.path) if hub else None
        if problem is not None:
            self.error(
                path,
                f"hub script path {value.path!r} {problem}",
                "write the hub script's path as Windmill shows it: hub/<id>/<app>/<name>",
            )
            return
        try:
            found = find_script(value.path, self.flow)
            if found is not None and found.runnable:
                found.read()
        except (UnsafePathError, OSError, UnicodeDecodeError) as exc:
            self.error(
                path,
                f"script {value.path!r} cannot be read: {exc}",
                "name a regular UTF-8 script file inside the flow's workspace (f/folder/name)",
            )
            return
        if found is None and hub:
            return  # no vendored copy: the step fetches the script from the hub when it runs
        if found is None:
            self.error(
                path,
                f"script {value.path!r} not found: no file {value.path}.<ext> under the repository root",
                "add the script file (Windmill's git-sync layout) or fix the path",
            )
        elif not found.runnable:
            self.error(
                path,
                f"script {value.path!r} ({found.path.name}): {unsupported_language_message(found.language)}",
                "rewrite the script in a supported language (docs/languages.md)",
            )
        elif (missing := missing_runtime(found.language)) is not None:
            self.error(path, f"script {value.path!r} ({found.path.name}): {missing}", _INSTALL_HINT)

    def _fields(self, module: FlowModule, *, where: str) -> None:
        path = module.json_path
        if _active_transform(module.timeout) and not isinstance(module.value, RawScript):
            self.warn(
                join_path(path, "timeout"),
                "'timeout' applies to script steps; on this step it has no effect",
                "set a timeout on the script steps inside it",
            )
        if module.cache_ttl and not isinstance(module.value, RawScript | PathScript):
            self.warn(
                join_path(path, "cache_ttl"),
                "'cache_ttl' applies to script steps; on this step it has no effect",
                "set cache_ttl on the script steps inside it",
            )
        if module.stop_after_all_iters_if is not None and isinstance(module.value, BranchAll):
            self.warn(
                join_path(path, "stop_after_all_iters_if"),
                "'stop_after_all_iters_if' on a branchall has no effect yet (it does on loops)",
                "test the array of branch results in stop_after_if of the step after the branchall",
            )
        if asks_approval(module):
            self._suspend(module, where=where)
        if module.delete_after_use:
            self.warn(join_path(path, "delete_after_use"), "'delete_after_use' has no effect yet", _IGNORED)
        if module.priority is not None:
            self.warn(join_path(path, "priority"), "'priority' has no effect yet", _IGNORED)


def container_on_tasks(module: FlowModule) -> bool:
    """Whether a top-level container runs on tasks of its own (each body step a task, loop
    iterations mapped): a for-loop, a branchone, or a branchall with branches, without a ``retry``
    (Windmill re-runs a retried container whole, so it runs in one task). Other containers, and
    every container nested in one, run inside one task (runtime/container_runner.py)."""
    value = module.value
    if module.retry is not None and module.retry.max_retries > 0:
        return False
    if isinstance(value, BranchAll):
        return bool(value.branches)
    return isinstance(value, ForloopFlow | BranchOne)


def _runs_in_one_task(module: FlowModule) -> str:
    """For a container that runs inside one task: where its steps run, as the refusal names it."""
    value = module.value
    kind = {
        ForloopFlow: "for-loop",
        WhileloopFlow: "while-loop",
        BranchOne: "branchone",
        BranchAll: "branchall",
    }.get(type(value), "container")
    if module.retry is not None and module.retry.max_retries > 0:
        why = "it has a retry, so it runs in one task (Windmill re-runs it whole)"
    elif isinstance(value, WhileloopFlow):
        why = "while-loops run in one task"
    else:
        why = "a container nested in another container runs in one task"
    return f"inside {kind} {module.id!r} ({why})"


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _active_transform(transform: InputTransform | None) -> bool:
    """A sleep/timeout is off when absent or a static 0/null (what the editor writes when disabled)."""
    if transform is None:
        return False
    return not (transform.kind == "static" and not transform.value)
