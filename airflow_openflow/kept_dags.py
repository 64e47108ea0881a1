"""Built DAGs kept between parses in the parse cache (``load_openflow_dags``, docs/configuration.md).

A warm parse in the DAG processor unpickles each unchanged flow's DAG (``compat.dag_pickle``)
instead of building it again; a worker builds the one DAG it runs afresh.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from airflow_openflow.spec import Problem
    from airflow_openflow.spec.parse_cache import ParseCache

log = logging.getLogger(__name__)


class KeptDag(NamedTuple):
    """A flow's DAG as an earlier parse built it, kept in the parse cache (a derived entry of the
    flow's load): a warm parse unpickles it instead of building it again (``compat.dag_pickle``).

    Its name covers everything the DAG is built from besides the flow's load: the dag_id, the DAG
    file, the schedule, the DAG keyword arguments, this package's code, the installed Airflow
    distributions and Airflow's configuration (``_build_environment``). Which sub-flows are DAGs of
    the same load is checked when it is read. DAG keyword arguments that reference code of the DAG
    file itself (a callback defined there) cannot be kept: such flows are built in every parse."""

    name: str

    @classmethod
    def name_for(
        cls,
        dag_id: str,
        flow_path: str,
        fileloc: str | None,
        schedule: Any,
        schedule_problems: list[Problem],
        dag_kwargs: Mapping[str, Any],
    ) -> KeptDag | None:
        import hashlib

        from airflow_openflow.compat import dag_pickle

        if any(p.severity == "error" for p in schedule_problems):
            return None
        inputs = dag_pickle.checked_dumps(
            (dag_id, flow_path, fileloc, schedule, schedule_problems, dict(dag_kwargs))
        )
        if inputs is None:
            return None
        digest = hashlib.sha256(inputs)
        digest.update(_build_environment().encode("utf-8", "surrogateescape"))
        return cls(f"dag:{digest.hexdigest()}")

    def read(self, cache: ParseCache, source: str, dag_id_of_file: Any) -> tuple[Any, list[Problem]] | None:
        from airflow_openflow.compat import dag_pickle

        data = cache.get_derived(self.name, source)
        if data is None:
            return None
        try:
            dag, warnings, sub_flows = dag_pickle.loads(data)
        except Exception as exc:  # another release's entry, or damaged: built again
            log.debug("kept DAG %s not used: %s", self.name, exc)
            return None
        if any(dag_id_of_file(file) != dag_id for file, dag_id in sub_flows.items()):
            return None  # a sub-flow became, or stopped being, a DAG of this load
        return dag, warnings

    def write(
        self,
        cache: ParseCache,
        source: str,
        dag: Any,
        warnings: list[Problem],
        sub_flows: dict[str | None, str | None],
    ) -> None:
        from airflow_openflow.compat import dag_pickle

        data = dag_pickle.dumps((dag, warnings, sub_flows))
        if data is not None:
            cache.put_derived(self.name, source, data)


@functools.cache
def _build_environment() -> str:
    """What a built DAG depends on besides its flow and arguments, once per process: this
    package's code, the installed Airflow distributions (their versions), the configuration
    (``AIRFLOW__*`` variables, the configuration file)."""
    import airflow

    package = Path(__file__).parent
    code = sorted(
        (str(f.relative_to(package)), f.stat().st_size, f.stat().st_mtime_ns) for f in package.rglob("*.py")
    )
    site = Path(next(iter(airflow.__path__))).parent
    try:
        distributions = sorted(
            n for n in os.listdir(site) if n.startswith("apache_airflow") and n.endswith(".dist-info")
        )
    except OSError:
        distributions = []
    config_file = os.environ.get("AIRFLOW_CONFIG") or os.path.join(
        os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "airflow.cfg"
    )
    try:
        config = os.stat(config_file)
        config_stat: tuple[int, int] | None = (config.st_size, config.st_mtime_ns)
    except OSError:
        config_stat = None
    variables = sorted((k, v) for k, v in os.environ.items() if k.startswith("AIRFLOW__"))
    return repr((code, distributions, config_file, config_stat, variables))
