from __future__ import annotations

import pytest

# The modules whose tests share a real deployment (a module-scoped ``deployment`` fixture: PostgreSQL,
# scheduler, DAG processor, triggerer, API server, a worker), two per xdist group. A group runs on
# one worker, module after module, so at most three deployments run at once (each module's own,
# stopped before the next module's starts) and the fourth worker runs the other tests meanwhile:
# four deployments at once on a two-core machine starve each other (requests time out) and hold
# every worker for the first minutes. The pairs are of about the same length.
DEPLOYMENT_GROUPS = {
    "test_faults.py": "deployments-1",
    "test_scheduled_runs.py": "deployments-1",
    "test_approvals_in_containers.py": "deployments-1",
    "test_approvals.py": "deployments-2",
    "test_restart_cli.py": "deployments-2",
    "test_deployment.py": "deployments-3",
    "test_waits.py": "deployments-3",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath) or "/conformance/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "deployment" in getattr(item, "fixturenames", ()):
            # A module's tests share one Airflow deployment: keep them on one xdist worker, so it
            # is started once; a module not in the table is a group of its own.
            module = item.nodeid.split("::", 1)[0]
            group = DEPLOYMENT_GROUPS.get(module.rsplit("/", 1)[-1], module)
            item.add_marker(pytest.mark.xdist_group(group))
