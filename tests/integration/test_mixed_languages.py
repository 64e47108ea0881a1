"""One flow in every language that runs (python3, bash, deno, bun, postgresql, go), end to end
through a real DAG run (``run_flow``): each step reads the one before it, the ``wmill`` TypeScript
client reads an Airflow Variable and writes flow user state that a later python3 step reads, and a
hostile value reaches the database as data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

import airflow_openflow
from tests.flows import flow, py
from tests.integration.test_sql_steps import pg, sql
from tests.integration.test_typescript_steps import ts as _step

__all__ = ["pg"]  # the fixture, imported for this module's tests

HOSTILE_NAME = "x'); DROP TABLE people; --"


@pytest.fixture
def greeting_variable() -> Iterator[None]:
    os.environ["AIRFLOW_VAR_F__SHOP__GREETING"] = "Welcome"
    try:
        yield
    finally:
        os.environ.pop("AIRFLOW_VAR_F__SHOP__GREETING", None)


STORE = """\
-- $1 people
INSERT INTO people (name, age)
SELECT p->>'name', (p->>'age')::int FROM jsonb_array_elements($1::jsonb) AS p;
SELECT name, age FROM people ORDER BY age
"""

DENO = """\
import * as wmill from "npm:windmill-client@1.420.1";

export async function main(people: { name: string; age: number }[], title = "Guests") {
  const greeting = await wmill.getVariable("f/shop/greeting");
  const adults = people.filter((p) => p.age >= 18).map((p) => p.name);
  await wmill.setFlowUserState("adults", adults);
  return `${greeting}, ${title}: ${adults.join(", ")}`;
}
"""

BUN = """\
import * as wmill from "windmill-client";

export async function main(line: string) {
  const adults: string[] = await wmill.getFlowUserState("adults");
  await wmill.setFlowUserState("counted", { adults: adults.length, by: "bun" });
  return { line, count: BigInt(adults.length), missing: undefined };
}
"""

GO = """\
package inner

func main(count string) (map[string]interface{}, error) {
\treturn map[string]interface{}{"doubled": count + count}, nil
}
"""

SUMMARY = """\
import wmill

def main(line, counted, said, doubled, stored):
    return {
        "line": line,
        "counted": counted,
        "state": wmill.get_flow_user_state("counted"),
        "adults_state": wmill.get_flow_user_state("adults"),
        "said": said,
        "doubled": doubled,
        "stored": [row["name"] for row in stored],
    }
"""


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain (golang-go)")
def test_one_flow_in_python_bash_deno_bun_postgresql_and_go(
    pg: dict[str, Any], greeting_variable: None
) -> None:
    steps = flow(
        py("prepare", "return [{'name': n, 'age': a} for n, a in rows]", rows="flow_input.rows"),
        sql("store", "postgresql", STORE, f"$res:{pg['path']}", people="results.prepare"),
        _step("greet", "deno", DENO, people="results.store"),
        _step("count", "bun", BUN, line="results.greet"),
        _step("announce", "bash", 'n="$1"\necho "adults: $n"\n', n="results.count.count"),
        _step("double", "go", GO, count="results.count.count"),
        {
            "id": "summary",
            "value": {
                "type": "rawscript",
                "language": "python3",
                "content": SUMMARY,
                "input_transforms": {
                    name: {"type": "javascript", "expr": expr}
                    for name, expr in {
                        "line": "results.greet",
                        "counted": "results.count",
                        "said": "results.announce",
                        "doubled": "results.double.doubled",
                        "stored": "results.store",
                    }.items()
                },
            },
        },
    )
    rows = [["kid", 9], ["ada", 36], [HOSTILE_NAME, 40]]
    run = airflow_openflow.run_flow(steps, {"rows": rows})
    assert run.status == "success", run.result
    assert run.result == {
        "line": f"Welcome, Guests: ada, {HOSTILE_NAME}",
        # BigInt -> its decimal string, undefined -> null (Windmill's TS wrapper)
        "counted": {"line": f"Welcome, Guests: ada, {HOSTILE_NAME}", "count": "2", "missing": None},
        "state": {"adults": 2, "by": "bun"},
        "adults_state": ["ada", HOSTILE_NAME],
        "said": "adults: 2",
        "doubled": "22",
        "stored": ["kid", "ada", HOSTILE_NAME],
    }
    # Every step ran as its own task, in the language it was written in.
    assert all(run.task_states[s] == "success" for s in ("prepare", "store", "greet", "count", "double"))
    # The hostile name was stored as data: the table is still there, with the three rows.
    with pg["connect"]() as conn:
        assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 3
