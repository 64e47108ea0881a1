from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath) or "/conformance/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
        if "deployment" in getattr(item, "fixturenames", ()):
            # A module's tests share one Airflow deployment (a module-scoped fixture): keep them on
            # one xdist worker, so it is started once.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
