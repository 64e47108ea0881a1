"""Syntax errors found at load time, where finding them starts no engine: Python scripts through
``ast.parse``, JavaScript expressions (transforms, predicates, iterators) through the text scanner
of ``spec.js_text`` (unterminated strings, template literals and comments, unbalanced brackets).

A script or an expression that cannot even be read would fail every run; reported here, it names
the step's JSON path and the line inside the code.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterator

from airflow_openflow.spec.errors import Problem
from airflow_openflow.spec.js_text import code_chars, syntax_problem, where
from airflow_openflow.spec.locate import join_path
from airflow_openflow.spec.model import (
    BranchAll,
    BranchOne,
    FlowModule,
    ForloopFlow,
    InputTransform,
    OpenFlow,
    RawScript,
    WhileloopFlow,
    all_modules,
)
from airflow_openflow.spec.suggest import did_you_mean

_JS_HINT = "fix the expression: it runs as JavaScript when the step runs, and would fail every run"
_PY_HINT = "fix the script: it would fail every run"


def check_syntax(flow: OpenFlow) -> list[Problem]:
    """Errors for python3 scripts and JavaScript expressions that cannot be read."""
    file = flow.source.file
    problems: list[Problem] = []
    for path, expr in _expressions(flow):
        found = syntax_problem(expr)
        if found is not None:
            message, index = found
            problems.append(
                Problem(
                    f"JavaScript syntax error: {message} ({where(expr, index)} of the expression)",
                    file=file,
                    json_path=path,
                    hint=_JS_HINT,
                )
            )
    for module in all_modules(flow):
        value = module.value
        if isinstance(value, RawScript) and value.language == "python3":
            problem = python_syntax_problem(value.content)
            if problem is not None:
                path = join_path(value.json_path, "content")
                problems.append(Problem(problem, file=file, json_path=path, hint=_PY_HINT))
    return problems


# ``results.<id>``, ``results?.<id>``, ``results["<id>"]`` (as runtime/expression_engine.py reads them)
_RESULT_REFERENCE = re.compile(
    r"""(?<![\w$.])results\s*(?:\?\.|\.)\s*([A-Za-z_$][\w$]*)"""
    r"""|(?<![\w$.])results\s*(?:\?\.)?\s*\[\s*(?:"([^"\\\n]*)"|'([^'\\\n]*)')\s*\]"""
)


def check_result_references(flow: OpenFlow) -> list[Problem]:
    """Warnings for ``results.<id>`` where no step of the flow has that id but one has an id close
    to it (``results.totl``, a step ``total``): it reads null, most likely a misspelt step id.
    An id close to none is left alone: reading a step that does not exist is null by Windmill's
    rule, and ``results.x ?? default`` is a way to write a default. Only code counts, not strings
    or comments."""
    ids = {module.id for module in all_modules(flow)}
    problems: list[Problem] = []
    for path, expr in _expressions(flow):
        for name in result_references(expr):
            guess = did_you_mean(name, ids) if name not in ids else ""
            if not guess:
                continue
            problems.append(
                Problem(
                    f"results.{name}: no step of this flow has the id {name!r}, so it reads null: {guess}",
                    file=flow.source.file,
                    json_path=path,
                    hint="fix the step id",
                    severity="warning",
                )
            )
    return problems


def result_references(expr: str) -> list[str]:
    """The step ids an expression reads as ``results.<id>`` / ``results["<id>"]`` in its code (not
    in its strings or comments), each once, in order."""
    if "results" not in expr:
        return []
    code = {index for index, _ in code_chars(expr)}
    names = (
        next(g for g in match.groups() if g is not None)
        for match in _RESULT_REFERENCE.finditer(expr)
        if match.start() in code
    )
    return list(dict.fromkeys(names))


def python_syntax_problem(code: str) -> str | None:
    """Why Python cannot read ``code`` (with the line inside it), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "\d" in a plain string
            ast.parse(code, filename="<script>")
    except SyntaxError as exc:
        where_ = f"line {exc.lineno} of the script" if exc.lineno else "in the script"
        if exc.lineno and exc.offset:
            where_ = f"line {exc.lineno}, column {exc.offset} of the script"
        return f"Python syntax error: {exc.msg} ({where_})"
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes; absurd nesting
        return f"Python cannot read the script: {exc or type(exc).__name__}"
    return None


def _expressions(flow: OpenFlow) -> Iterator[tuple[str, str]]:
    """(json path of the ``expr``, the JavaScript) of every expression of the flow."""
    if flow.value.skip_expr:
        yield "value.skip_expr", flow.value.skip_expr
    for module in all_modules(flow):
        yield from _module_expressions(module)


def _module_expressions(module: FlowModule) -> Iterator[tuple[str, str]]:
    value = module.value
    transforms: list[InputTransform | None] = [
        *getattr(value, "input_transforms", {}).values(),
        module.sleep,
        module.timeout,
        module.suspend.user_groups_required if module.suspend is not None else None,
    ]
    if isinstance(value, ForloopFlow):
        transforms += [value.iterator, value.parallelism]
    elif isinstance(value, WhileloopFlow):
        transforms.append(value.parallelism)
    for transform in transforms:
        if transform is not None and transform.kind == "javascript" and transform.expr:
            yield join_path(transform.json_path, "expr"), transform.expr
    for predicate in (module.stop_after_if, module.stop_after_all_iters_if, module.skip_if):
        if predicate is not None and predicate.expr:
            yield join_path(predicate.json_path, "expr"), predicate.expr
    if module.retry is not None and module.retry.retry_if:
        yield join_path(join_path(module.retry.json_path, "retry_if"), "expr"), module.retry.retry_if
    if isinstance(value, BranchOne | BranchAll):
        for branch in value.branches:
            if branch.expr:
                yield join_path(branch.json_path, "expr"), branch.expr
