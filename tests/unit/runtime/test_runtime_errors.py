"""Error objects (runtime/errors.py)."""

from __future__ import annotations

import pickle

from airflow_openflow.runtime.errors import ExpressionError, StepError, error_object


def test_error_object_keys() -> None:
    assert error_object("IndexError", "boom") == {"error": {"name": "IndexError", "message": "boom"}}
    assert error_object("E", "m", stack="tb", step_id="a", result=[1]) == {
        "error": {"name": "E", "message": "m", "stack": "tb", "step_id": "a", "result": [1]}
    }


def test_step_error_both_constructors() -> None:
    built = StepError("ValueError", "bad", stack="tb", step_id="s")
    assert built.error == {"error": {"name": "ValueError", "message": "bad", "stack": "tb", "step_id": "s"}}
    assert (built.name, built.message, built.step_id) == ("ValueError", "bad", "s")
    assert str(built) == "ValueError: bad"
    wrapped = StepError(error_object("VariableNotFound", "no such variable"))
    assert wrapped.error == {"error": {"name": "VariableNotFound", "message": "no such variable"}}
    assert wrapped.step_id is None


def test_errors_pickle() -> None:
    err = pickle.loads(pickle.dumps(StepError("E", "m", step_id="x")))
    assert err.error == {"error": {"name": "E", "message": "m", "step_id": "x"}}
    exc = pickle.loads(pickle.dumps(ExpressionError("results.a.b", "TypeError", "nope")))
    assert (exc.expr, exc.name, exc.message) == ("results.a.b", "TypeError", "nope")


def test_expression_error_object() -> None:
    exc = ExpressionError("results.a.b", "TypeError", "cannot read property 'b' of null")
    text = "Error during isolated evaluation of expression `results.a.b`: cannot read property 'b' of null"
    assert str(exc) == text
    assert exc.error_object() == {"error": {"name": "TypeError", "message": text}}
    assert exc.error_object(step_id="b")["error"]["step_id"] == "b"
