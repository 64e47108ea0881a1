"""``airflow-openflow``: validate, render and run OpenFlow documents from the command line.

``check`` reports which flows of a Windmill workspace run here (``migration_report.py``).
``validate`` does what the DAG file does with each document (``dag_factory``): load, check, prepare,
build the DAG; where Airflow is not installed (e.g. a pre-commit hook) or with ``--no-build`` it stops
before the build. ``render`` prints the DAG; ``run`` executes one DAG run through Airflow
(see ``runner.py``); ``hub pull`` vendors the Windmill Hub scripts flows use (``hub_pull.py``).

Exit status: 0 success, 1 the flow failed (``hub pull``: a script could not be vendored; ``check``:
a flow does not run here or a schedule file is broken), 2 invalid
document or input, 130 interrupted (Ctrl-C), 141 (128 + SIGPIPE, what a shell shows for a command
killed by SIGPIPE) when the reader of stdout or stderr went away (``| head``): ``run`` then abandons
the flow run and stops every process it started before exiting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_openflow.cli_output import (
    OutputClosed,
    OutputGuard,
    ensure_standard_streams,
    logs_to,
    silence_closed_output,
)

EXIT_OK, EXIT_FLOW_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE  # 141


def main(argv: list[str] | None = None) -> int:
    ensure_standard_streams()
    parser = argparse.ArgumentParser(
        prog="airflow-openflow", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check flow documents; exit 0 if valid, 2 if not")
    validate.add_argument("paths", nargs="+", type=Path, help="flow files, git-sync flow folders or folders")
    validate.add_argument("--quiet", "-q", action="store_true", help="print errors only")
    validate.add_argument(
        "--no-build",
        dest="build",
        action="store_false",
        help="load and check the documents without building their DAGs (faster; no Airflow import)",
    )

    check = commands.add_parser(
        "check",
        help="migration report: which flows of a Windmill git-sync workspace run here, and what "
        "blocks the others; exit 0 if every flow runs, 1 if not",
    )
    check.add_argument("folder", type=Path, help="the workspace folder (a wmill sync pull)")
    check.add_argument("--format", choices=("markdown", "json"), default="markdown")

    render = commands.add_parser("render", help="print the Airflow DAG a flow becomes")
    render.add_argument("path", type=Path)

    run = commands.add_parser("run", help="run a flow once through Airflow; print its result as JSON")
    run.add_argument("path", type=Path)
    run.add_argument("--input", default="{}", help="the flow arguments as a JSON object")
    run.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="show Airflow's own logs on stderr (by default they go to a file whose path is printed)",
    )
    run.add_argument(
        "--mode",
        choices=["auto", "executor", "in_process"],
        default=None,
        help="run the tasks in this process when the flow allows it (auto, the default unless "
        "OPENFLOW_RUN_MODE says otherwise), always through the executor, or always in process",
    )

    hub = commands.add_parser("hub", help="Windmill Hub scripts").add_subparsers(
        dest="hub_command", required=True
    )
    pull = hub.add_parser(
        "pull",
        help="vendor the hub scripts the flows under FOLDER use into the repository (for workers "
        "without internet); exit 1 if one could not be fetched",
    )
    pull.add_argument("folder", type=Path, help="the folder of flows (as given to load_openflow_dags)")
    pull.add_argument("--hub-url", help="the hub (default: [openflow] hub_url, else Windmill's public hub)")

    restart = commands.add_parser(
        "restart",
        help="restart a DAG run of a flow from a step: clear the step and everything after it "
        "through Airflow's REST API (docs/restart.md)",
    )
    restart.add_argument("dag_id")
    restart.add_argument("run_id")
    restart.add_argument("--from", dest="step", required=True, help="the Windmill step id to restart from")
    restart.add_argument(
        "--iteration",
        type=int,
        help="on a top-level for-loop (or a step of its body): a sequential loop re-runs iterations "
        "N..end, a parallel loop iteration N, then what follows",
    )
    restart.add_argument("--dry-run", action="store_true", help="list what would be cleared; change nothing")
    restart.add_argument("--api-url", help="the API server (default: Airflow's [api] base_url)")
    restart.add_argument("--token", help="an API token (default: $AIRFLOW_API_TOKEN)")
    restart.add_argument("--username", help="fetch a token with these credentials (POST /auth/token)")
    restart.add_argument("--password")

    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.paths, quiet=args.quiet, build=args.build)
        if args.command == "check":
            return _check(args.folder, args.format)
        if args.command == "render":
            return _render(args.path)
        if args.command == "restart":
            return _restart(args)
        if args.command == "hub":
            return _hub_pull(args.folder, args.hub_url)
        return _run(args.path, args.input, verbose=args.verbose, mode=args.mode)
    except BrokenPipeError:  # validate / render printing into ``| head``
        silence_closed_output()
        return EXIT_OUTPUT_CLOSED


def _validate(paths: list[Path], *, quiet: bool, build: bool = True) -> int:
    from airflow_openflow.dag_factory import ignore_file_syntax
    from airflow_openflow.spec import discover_flows
    from airflow_openflow.spec.paths import flow_folder_of

    syntax = ignore_file_syntax(use_airflow=build)

    # (as given or found, the root its dag_id is relative to, found by searching that root)
    documents: list[tuple[Path, Path, bool]] = []
    for path in paths:
        if not path.exists():
            print(f"{path}: error: no such file or folder", file=sys.stderr)
            return EXIT_INVALID
        if path.is_dir() and flow_folder_of(path) is None:
            documents.extend((found, path, True) for found in discover_flows(path, ignore_syntax=syntax))
        else:  # the root load_openflow_dags gives a flow file or folder named on its own
            documents.append((path, (flow_folder_of(path) or path).parent, False))
    if not documents:
        print("no flow documents found", file=sys.stderr)
        return EXIT_INVALID

    flows, note = _flow_dags(documents) if build else (None, None)
    if note and not quiet:
        print(note)
    # the schedule files of each folder they are read from (the built flows' own when built)
    indexes: dict[Path, Any] = flows.indexes if flows is not None else {}
    invalid = 0
    for document, problems in _check_documents(documents, flows, indexes, syntax):
        errors = [p for p in problems if p.severity == "error"]
        invalid += bool(errors)
        _print_problems(problems, quiet=quiet)
        if not errors and not quiet:
            print(f"{document}: ok")
    # schedule files no flow gets: broken ones (errors: the DAG file logs them) and ones naming
    # no flow found (warnings: the DAG file leaves them out without a word)
    from airflow_openflow.spec.schedules import index_schedules, orphan_problems, unresolved_problems

    searched = {root for _, root, found_in_root in documents if found_in_root}
    for root in searched - set(indexes):  # none of its flows loaded far enough to read them
        indexes[root] = index_schedules(root, recursive=True, ignore_syntax=syntax)
    leftovers = [
        problem
        for folder, index in sorted(indexes.items())
        if folder in searched
        for problem in (*orphan_problems(index), *unresolved_problems(index))
    ]
    broken_schedules = len({p.file for p in leftovers if p.severity == "error"})
    _print_problems(leftovers, quiet=quiet)
    if len(documents) > 1 and not quiet:
        schedules_note = f", {broken_schedules} invalid schedule file(s)" if broken_schedules else ""
        print(f"{len(documents) - invalid} valid, {invalid} invalid{schedules_note}")
    return EXIT_INVALID if invalid or broken_schedules else EXIT_OK


def _print_problems(problems: list[Any], *, quiet: bool) -> None:
    for problem in problems:
        if problem.severity == "error" or not quiet:
            print(problem.format(), file=sys.stderr if problem.severity == "error" else sys.stdout)


def _flow_dags(documents: list[tuple[Path, Path, bool]]) -> tuple[Any, str | None]:
    """What ``load_openflow_dags`` would build the documents with, or (None, why not) when
    Airflow cannot be imported: then documents are loaded and checked, not built."""
    try:
        from airflow_openflow.dag_factory import FlowDags, ignore_file_syntax

        return FlowDags(documents, ignore_syntax=ignore_file_syntax()), None
    except ImportError as exc:
        return None, f"note: Airflow cannot be imported ({exc}): flows were checked but not built into DAGs"


def _check_documents(
    documents: list[tuple[Path, Path, bool]],
    flows: Any,
    indexes: dict[Path, Any] | None = None,
    ignore_syntax: str | None = "glob",
) -> Iterator[tuple[Path, list[Any]]]:
    """(document, its problems, errors first) for each document. The sequence is the DAG file's
    (``dag_factory``), its schedule files included (``indexes``: the schedule files read so far,
    by folder; when not building, the check of them is done here); a failure of any kind is a
    problem of that document, never the end of the check."""
    from airflow_openflow.dag_factory import prepare_document
    from airflow_openflow.spec.errors import FlowDocumentError, Problem
    from airflow_openflow.spec.schedules import choose_schedule, index_schedules, schedule_folder

    indexes = {} if indexes is None else indexes
    for index, (document, root, found_in_root) in enumerate(documents):
        problems: list[Problem]
        try:
            if flows is None:
                _, problems = prepare_document(document, root if found_in_root else None)
                folder, recursive = schedule_folder(document, root, found_in_root=found_in_root)
                if folder not in indexes:
                    indexes[folder] = index_schedules(
                        folder, recursive=recursive, ignore_syntax=ignore_syntax
                    )
                problems.extend(choose_schedule(indexes[folder].for_flow(document))[1])
            else:
                located = flows.located[index]
                clash = flows.clash_message(located.dag_id)
                if clash is not None:
                    problems = [Problem(clash, file=str(document))]
                else:
                    _, problems = flows.build(located)
        except FlowDocumentError as exc:
            problems = [*exc.problems, *exc.warnings]
        except Exception as exc:  # e.g. Airflow refusing the DAG: the DAG file would show it
            what = "cannot be built into an Airflow DAG" if flows is not None else "cannot be checked"
            problems = [
                Problem(
                    f"the flow {what}: {type(exc).__name__}: {exc}",
                    file=str(document),
                    hint="the DAG file would load this flow as an invalid-flow DAG with this error: fix "
                    "what it names, or report it as a bug of airflow-openflow if the document is valid",
                )
            ]
        errors = [p for p in problems if p.severity == "error"]
        yield document, errors + [p for p in problems if p.severity != "error"]


def _check(folder: Path, output_format: str) -> int:
    from airflow_openflow.dag_factory import ignore_file_syntax
    from airflow_openflow.migration_report import build_report, to_json, to_markdown

    if not folder.is_dir():
        print(f"{folder}: error: no such folder", file=sys.stderr)
        return EXIT_INVALID
    report = build_report(folder, ignore_syntax=ignore_file_syntax(use_airflow=False))
    if not report.flows:
        print(f"no flow documents found under {folder}", file=sys.stderr)
        return EXIT_INVALID
    print(to_json(report) if output_format == "json" else to_markdown(report))
    return EXIT_OK if report.ok else EXIT_FLOW_FAILED


def _hub_pull(folder: Path, hub_url: str | None) -> int:
    from airflow_openflow.hub_pull import pull
    from airflow_openflow.runtime.hub import configured_hub_url

    if not folder.exists():
        print(f"{folder}: error: no such file or folder", file=sys.stderr)
        return EXIT_INVALID
    url = (hub_url or configured_hub_url()).rstrip("/")
    report = pull(folder, url, say=lambda line: print(line, flush=True))
    for skipped in report.skipped_documents:
        print(f"note: {skipped}", file=sys.stderr)
    for failure in report.failed:
        print(f"error: {failure}", file=sys.stderr)
    counts = (
        f"{len(report.fetched)} fetched, {len(report.vendored)} already vendored, {len(report.failed)} failed"
    )
    if not (report.fetched or report.vendored or report.failed):
        print(f"no hub scripts are used by the flows under {folder}")
    else:
        print(counts, file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_FLOW_FAILED


def _restart(args: argparse.Namespace) -> int:
    from airflow_openflow.restart import RestartError, format_instances, restart

    try:
        instances = restart(
            args.dag_id,
            args.run_id,
            args.step,
            iteration=args.iteration,
            dry_run=args.dry_run,
            api_url=args.api_url,
            token=args.token,
            username=args.username,
            password=args.password,
        )
    except RestartError as exc:
        print(f"airflow-openflow restart: {exc}", file=sys.stderr)
        return exc.exit_code
    print(format_instances(instances, dry_run=args.dry_run, dag_id=args.dag_id, run_id=args.run_id))
    return EXIT_OK


def _render(path: Path) -> int:
    from airflow_openflow.dag_factory import load_openflow_dags
    from airflow_openflow.spec.errors import FlowDocumentError

    try:
        dags = load_openflow_dags(path, strict=True)
    except FlowDocumentError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    for dag_id, dag in dags.items():
        print(render_dag(dag_id, dag))
    return EXIT_OK


def render_dag(dag_id: str, dag: Any) -> str:
    lines = [f"DAG {dag_id}"]
    params = list(dag.params.keys())
    if params:
        lines.append(f"  params: {', '.join(params)}")
    for task in dag.topological_sort():
        upstream = sorted(task.upstream_task_ids)
        after = f"  <- {', '.join(upstream)}" if upstream else ""
        rule = getattr(task.trigger_rule, "value", task.trigger_rule)
        lines.append(f"  {task.task_id}  [{type(task).__name__}, trigger_rule={rule}]{after}")
    return "\n".join(lines)


def _run(path: Path, input_json: str, *, verbose: bool = False, mode: str | None = None) -> int:
    try:
        inputs = json.loads(input_json, parse_constant=_no_constant)
    except ValueError as exc:  # a JSONDecodeError, or NaN / Infinity (which json.loads would accept)
        print(f"--input is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not isinstance(inputs, dict):
        print("--input must be a JSON object (the flow arguments)", file=sys.stderr)
        return EXIT_INVALID

    from airflow_openflow.runner import close_runner

    guard = OutputGuard()
    try:
        with guard:
            code = _run_and_print(path, inputs, verbose=verbose, mode=mode)
        if guard.fired:
            # Raised into a step that ran in this process, where Airflow's task runner took it for
            # the step's failure: the run ended, but its reader is gone all the same.
            code = EXIT_OUTPUT_CLOSED
    except (OutputClosed, BrokenPipeError):
        code = EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        # Now, not at exit: the API server, triggerer and executor workers (and the tasks they
        # run) of a finished or abandoned run, stopped by their pids.
        close_runner()
        silence_closed_output()
    return code


def _run_and_print(
    path: Path, inputs: dict[str, Any], *, verbose: bool = False, mode: str | None = None
) -> int:
    """stdout: the result JSON only. stderr: one line per step as it ends (``run_view.py``); Airflow's
    own logs go to a file (its path is printed first), or to stderr too with ``verbose``."""
    from airflow_openflow.run_modes import RunModeError
    from airflow_openflow.run_view import StepView, failure_lines
    from airflow_openflow.runner import FlowInputError, run_flow
    from airflow_openflow.spec.errors import FlowDocumentError

    own_home = not os.environ.get("AIRFLOW_HOME")  # then the runner's home is removed at its end
    log_path = None if verbose else _full_log_path()
    if log_path is not None:
        print(f"running {path} (Airflow's log: {log_path}; -v to show it here)", file=sys.stderr, flush=True)
    view = StepView(sys.stderr)
    try:
        with logs_to(log_path) as stderr:
            view.out = stderr
            outcome = run_flow(path, inputs, observer=view, mode=mode)
    except (FlowDocumentError, FlowInputError, RunModeError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    print(json.dumps(outcome.result, ensure_ascii=False, indent=2, default=str))
    sys.stdout.flush()  # a closed stdout shows here, while the guard is on
    if outcome.status != "success":
        from airflow.configuration import conf

        folder = conf.get("logging", "base_log_folder", fallback=None)
        copy_to = (log_path or _full_log_path()) if own_home else None
        for line in failure_lines(outcome, folder, copy_to, run_log=log_path):
            print(line, file=sys.stderr)
    print(f"flow {outcome.status}: DAG {outcome.dag_id}, run {outcome.run_id}", file=sys.stderr)
    sys.stderr.flush()
    return EXIT_OK if outcome.status == "success" else EXIT_FLOW_FAILED


def _full_log_path() -> Path:
    """A new file for Airflow's log of one ``run``: under ``$AIRFLOW_HOME/openflow_run/`` when
    AIRFLOW_HOME is set, else in the temporary folder (the run's own home is removed at its end)."""
    import tempfile

    home = os.environ.get("AIRFLOW_HOME")
    folder = Path(home) / "openflow_run" if home else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix="run-" if folder else "airflow-openflow-run-", suffix=".log", dir=folder
    )
    os.close(fd)
    return Path(name)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or Infinity): write a number or null")


if __name__ == "__main__":
    sys.exit(main())
