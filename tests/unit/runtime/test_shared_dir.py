"""The ``./shared`` directory of same_worker flows on object storage (runtime/shared_dir.py):
local ``file://`` stores, and S3 through the amazon provider against moto's server on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_openflow.runtime.errors import StepError
from airflow_openflow.runtime.shared_dir import (
    SharedDirectoryError,
    SharedLocation,
    shared_base,
    shared_directory,
)


def _step(tmp_path: Path, location: SharedLocation, name: str) -> Path:
    workdir = tmp_path / "work" / name
    workdir.mkdir(parents=True)
    return workdir


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _round_trip(tmp_path: Path, location: SharedLocation) -> None:
    with shared_directory(_step(tmp_path, location, "one"), location) as shared:
        assert shared is not None and shared.is_dir() and _files(shared) == {}
        (shared / "a.txt").write_text("from one")
        (shared / "sub").mkdir()
        (shared / "sub" / "b.txt").write_text("nested")
        (shared / "empty").mkdir()
    with shared_directory(_step(tmp_path, location, "two"), location) as shared:
        assert shared is not None
        assert _files(shared) == {"a.txt": "from one", "sub/b.txt": "nested"}
        assert (shared / "empty").is_dir()
        (shared / "a.txt").write_text("from two")
        (shared / "sub" / "b.txt").unlink()
    with shared_directory(_step(tmp_path, location, "three"), location) as shared:
        assert shared is not None
        assert _files(shared) == {"a.txt": "from two"}


def test_files_written_by_one_step_are_seen_by_the_next(tmp_path: Path) -> None:
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "manual__2026-01-01T00:00:00+00:00")
    (tmp_path / "store").mkdir()
    _round_trip(tmp_path, location)
    run = tmp_path / "store" / "dag" / "manual__2026-01-01T00:00:00+00:00"
    manifests = sorted(p.name for p in (run / "manifests").iterdir())
    assert [m[:12] for m in manifests] == ["000000000001", "000000000002"]
    latest = json.loads((run / "manifests" / manifests[-1]).read_text())
    assert set(latest["files"]) == {"a.txt"} and latest["dirs"] == ["empty", "sub"]


def test_no_location_does_nothing(tmp_path: Path) -> None:
    with shared_directory(tmp_path, None) as shared:
        assert shared is None
    assert list(tmp_path.iterdir()) == []


def test_changes_of_a_failed_step_are_kept(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "run")
    with (
        pytest.raises(StepError, match="boom"),
        shared_directory(_step(tmp_path, location, "one"), location) as shared,
    ):
        assert shared is not None
        (shared / "log.txt").write_text("partial work")
        raise StepError("ValueError", "boom")
    with shared_directory(_step(tmp_path, location, "two"), location) as shared:
        assert shared is not None and _files(shared) == {"log.txt": "partial work"}


def test_an_upload_without_its_manifest_is_never_seen(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "run")
    with shared_directory(_step(tmp_path, location, "one"), location) as shared:
        assert shared is not None
        (shared / "a.txt").write_text("committed")
    run = tmp_path / "store" / "dag" / "run"
    # What a worker that died half-way leaves: new objects, a manifest still under its temporary name.
    stray = run / "objects" / ("f" * 32)
    stray.mkdir(parents=True)
    (stray / "a.txt").write_text("half-written")
    (stray / "b.txt").write_text("never committed")
    (run / "manifests" / f".000000000002-{'f' * 32}.json.1234.tmp").write_text('{"format": 1, "files": {')
    with shared_directory(_step(tmp_path, location, "two"), location) as shared:
        assert shared is not None and _files(shared) == {"a.txt": "committed"}


def test_concurrent_steps_merge_per_file_and_the_last_to_finish_wins(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "run")
    with shared_directory(_step(tmp_path, location, "zero"), location) as shared:
        assert shared is not None
        (shared / "same.txt").write_text("0")
        (shared / "keep.txt").write_text("0")
    first = shared_directory(_step(tmp_path, location, "first"), location)
    second = shared_directory(_step(tmp_path, location, "second"), location)
    shared_1, shared_2 = first.__enter__(), second.__enter__()  # both start from version 1
    assert shared_1 is not None and shared_2 is not None
    (shared_1 / "only1.txt").write_text("1")
    (shared_1 / "same.txt").write_text("1")
    (shared_2 / "only2.txt").write_text("2")
    (shared_2 / "same.txt").write_text("2")
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)  # finishes last
    with shared_directory(_step(tmp_path, location, "after"), location) as shared:
        assert shared is not None
        assert _files(shared) == {"keep.txt": "0", "only1.txt": "1", "only2.txt": "2", "same.txt": "1"}


def test_a_corrupted_object_fails_with_the_location(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "run")
    with shared_directory(_step(tmp_path, location, "one"), location) as shared:
        assert shared is not None
        (shared / "a.txt").write_text("good")
    [obj] = (tmp_path / "store" / "dag" / "run" / "objects").rglob("a.txt")
    obj.write_text("evil")
    with (
        pytest.raises(SharedDirectoryError, match="does not match the manifest") as caught,
        shared_directory(_step(tmp_path, location, "two"), location),
    ):
        pass
    assert caught.value.name == "SharedDirectoryError"
    assert caught.value.error["error"]["location"] == location.url


def test_a_missing_store_fails_before_the_step_runs(tmp_path: Path) -> None:
    location = SharedLocation((tmp_path / "not-mounted").as_uri(), "dag", "run")
    ran = False
    with (
        pytest.raises(SharedDirectoryError) as caught,
        shared_directory(_step(tmp_path, location, "one"), location),
    ):
        ran = True
    assert not ran
    message = caught.value.message
    assert f"shared directory at {location.url}" in message
    assert "the base folder does not exist" in message


def test_an_unreadable_store_names_the_cause(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    location = SharedLocation((tmp_path / "store").as_uri(), "dag", "run")
    (tmp_path / "store" / "dag").write_text("a file where the run's folder should be")
    with (
        pytest.raises(SharedDirectoryError, match=r"shared directory at file://.*/store/dag/run: ") as caught,
        shared_directory(_step(tmp_path, location, "one"), location),
    ):
        pass
    assert "Error" in caught.value.message  # the exception's type and text: the cause


def test_shared_base_defaults_under_airflow_home_and_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__AIRFLOW_HOME", str(tmp_path / "home"))
    assert shared_base() == (tmp_path / "home" / "openflow" / "shared").as_uri()
    assert (tmp_path / "home" / "openflow" / "shared").is_dir()
    monkeypatch.setenv("AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE", "s3://my_conn@bucket/openflow")
    assert shared_base() == "s3://my_conn@bucket/openflow"
    assert SharedLocation.for_run("d", "r").url == "s3://my_conn@bucket/openflow/d/r"
    monkeypatch.setenv("AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE", str(tmp_path / "plain"))
    assert shared_base() == (tmp_path / "plain").as_uri()


# -- S3, through the amazon provider and s3fs, against moto's server on loopback ------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _aws_conn(port: int, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[int]:
    """moto's S3 server in a thread of this process, on a free loopback port; stopped after."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="openflow-shared")
        yield port
    finally:
        server.stop()


def test_s3_round_trip_and_partial_upload(
    tmp_path: Path, moto_s3: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_SHARED", _aws_conn(moto_s3))
    location = SharedLocation("s3://moto_shared@openflow-shared/runs", "dag", "manual__2026-01-01T00:00:00")
    _round_trip(tmp_path, location)
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{moto_s3}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="openflow-shared")["Contents"]]
    assert sum(1 for k in keys if "/manifests/" in k) == 2
    # A half-finished upload of a later step: objects, no manifest. Not seen.
    client.put_object(
        Bucket="openflow-shared", Key=f"runs/dag/{location.run_id}/objects/{'e' * 32}/x.txt", Body=b"x"
    )
    with shared_directory(_step(tmp_path, location, "four"), location) as shared:
        assert shared is not None and _files(shared) == {"a.txt": "from two"}


def test_s3_missing_bucket_fails_clearly(
    tmp_path: Path, moto_s3: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MOTO_NOBUCKET", _aws_conn(moto_s3))
    location = SharedLocation("s3://moto_nobucket@no-such-bucket/runs", "dag", "run")
    with (
        pytest.raises(SharedDirectoryError, match="'no-such-bucket' does not exist or cannot be reached"),
        shared_directory(_step(tmp_path, location, "one"), location),
    ):
        pass


def test_s3_endpoint_down_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    port = _free_port()  # nothing listens there
    conn = _aws_conn(port, config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1})
    monkeypatch.setenv("AIRFLOW_CONN_S3_DOWN", conn)
    location = SharedLocation("s3://s3_down@openflow-shared/runs", "dag", "run")
    with (
        pytest.raises(SharedDirectoryError) as caught,
        shared_directory(_step(tmp_path, location, "one"), location),
    ):
        pass
    message = caught.value.message
    assert message.startswith("shared directory at s3://s3_down@openflow-shared/runs/dag/run: ")
    assert "EndpointConnectionError" in message and f"127.0.0.1:{port}" in message


# -- where a step finds its location: the flow's same_worker, or a same_worker caller's ----------


class _TI:
    dag_id = "child_dag"
    run_id = "manual__1"
    map_index = -1


class _DagRun:
    def __init__(self, conf: dict[str, object]) -> None:
        self.conf = conf


def _context(conf: dict[str, object], *, same_worker: bool) -> Any:
    from airflow_openflow.runtime.airflow_context import AirflowStepContext
    from airflow_openflow.runtime.plan import FlowInfo, StepPlan

    plan = StepPlan(step_id="a", flow=FlowInfo(dag_id="child_dag", same_worker=same_worker))
    return AirflowStepContext({"ti": _TI(), "dag_run": _DagRun(conf)}, plan)


def test_the_location_comes_from_same_worker_or_a_calling_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_openflow.runtime.inputs import CALLER_SHARED_KEY, flow_input_from

    monkeypatch.setenv("AIRFLOW__OPENFLOW__SHARED_DIRECTORY_BASE", tmp_path.as_uri())
    assert _context({}, same_worker=False).shared_location is None
    own = _context({}, same_worker=True).shared_location
    assert own == SharedLocation(tmp_path.as_uri(), "child_dag", "manual__1")
    caller = {"base": "s3://c@b/p", "dag_id": "parent", "run_id": "r1"}
    conf = {CALLER_SHARED_KEY: caller, "x": 1}
    assert _context(conf, same_worker=False).shared_location == SharedLocation("s3://c@b/p", "parent", "r1")
    assert flow_input_from(conf, None) == {"x": 1}  # not part of the child's input
