"""``airflow-openflow``: validate, render and run OpenFlow documents from the command line.

``validate`` never imports Airflow (it runs where Airflow is not installed, e.g. in a pre-commit
hook); ``render`` builds the DAG; ``run`` executes one DAG run through Airflow (see ``runner.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FLOW_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="airflow-openflow", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check flow documents; exit 0 if valid, 2 if not")
    validate.add_argument("paths", nargs="+", type=Path, help="flow files, git-sync flow folders or folders")
    validate.add_argument("--quiet", "-q", action="store_true", help="print errors only")

    render = commands.add_parser("render", help="print the Airflow DAG a flow becomes")
    render.add_argument("path", type=Path)

    run = commands.add_parser("run", help="run a flow once through Airflow; print its result as JSON")
    run.add_argument("path", type=Path)
    run.add_argument("--input", default="{}", help="the flow arguments as a JSON object")

    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args.paths, quiet=args.quiet)
    if args.command == "render":
        return _render(args.path)
    return _run(args.path, args.input)


def _validate(paths: list[Path], *, quiet: bool) -> int:
    from airflow_openflow.spec import check_supported, discover_flows, load_flow
    from airflow_openflow.spec.errors import FlowDocumentError, Problem
    from airflow_openflow.spec.paths import flow_folder_of

    documents: list[tuple[Path, Path | None]] = []
    for path in paths:
        if not path.exists():
            print(f"{path}: error: no such file or folder", file=sys.stderr)
            return EXIT_INVALID
        if path.is_dir() and flow_folder_of(path) is None:
            documents.extend((found, path) for found in discover_flows(path))
        else:
            documents.append((path, None))
    if not documents:
        print("no flow documents found", file=sys.stderr)
        return EXIT_INVALID

    invalid = 0
    for document, root in documents:
        problems: list[Problem]
        try:
            loaded = load_flow(document, root=root)
            problems = [*loaded.warnings, *check_supported(loaded.flow)]
        except FlowDocumentError as exc:
            problems = [*exc.problems, *exc.warnings]
        errors = [p for p in problems if p.severity == "error"]
        invalid += bool(errors)
        for problem in problems:
            if problem.severity == "error" or not quiet:
                print(problem.format(), file=sys.stderr if problem.severity == "error" else sys.stdout)
        if not errors and not quiet:
            print(f"{document}: ok")
    if len(documents) > 1 and not quiet:
        print(f"{len(documents) - invalid} valid, {invalid} invalid")
    return EXIT_INVALID if invalid else EXIT_OK


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


def _run(path: Path, input_json: str) -> int:
    try:
        inputs = json.loads(input_json)
    except json.JSONDecodeError as exc:
        print(f"--input is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not isinstance(inputs, dict):
        print("--input must be a JSON object (the flow arguments)", file=sys.stderr)
        return EXIT_INVALID

    from airflow_openflow.runner import FlowInputError, run_flow
    from airflow_openflow.spec.errors import FlowDocumentError

    try:
        outcome = run_flow(path, inputs)
    except (FlowDocumentError, FlowInputError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    print(json.dumps(outcome.result, ensure_ascii=False, indent=2, default=str))
    print(f"flow {outcome.status}: DAG {outcome.dag_id}, run {outcome.run_id}", file=sys.stderr)
    return EXIT_OK if outcome.status == "success" else EXIT_FLOW_FAILED


if __name__ == "__main__":
    sys.exit(main())
