"""The triggers' former module: deferred tasks serialized by an earlier release name their trigger
by this path, so it stays importable. New code imports ``airflow_openflow.triggers.waits``."""

from airflow_openflow.triggers.waits import (
    FINISHED_STATES,
    DagRunEndedTrigger,
    TaskFinishedTrigger,
)

__all__ = [
    "FINISHED_STATES",
    "DagRunEndedTrigger",
    "TaskFinishedTrigger",
]
