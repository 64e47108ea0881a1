"""Stands in for a flow document that could not be loaded, so the error shows in the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class InvalidFlowOperator(BaseOperator):
    """The only task of the DAG of a flow document that could not be loaded: it fails with the error.

    A flow that fails to load still gets a DAG (tagged ``openflow-invalid``), so the error shows in
    the Airflow UI next to the other flows instead of only in the DAG processor's log; the other
    flows of the folder load as usual. Running it fails at once, without retries, with the error
    text; fixing the document rebuilds the DAG on the next parse.

    :param error_text: The loader's error: the file, the line and JSON path, what to fix.
    """

    # Never rendered: the error quotes the document, whose expressions may contain ``{{``.
    template_fields: Sequence[str] = ()
    ui_color = "#f8d7da"

    def __init__(self, *, error_text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error_text = error_text

    def execute(self, context: Any) -> None:
        raise AirflowFailException(
            f"this flow document is invalid; fix it and the DAG reloads:\n{self.error_text}"
        )
