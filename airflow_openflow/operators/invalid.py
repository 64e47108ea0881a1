"""Stands in for a flow document that could not be loaded, so the error shows in the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class InvalidFlowOperator(BaseOperator):
    template_fields: Sequence[str] = ()
    ui_color = "#f8d7da"

    def __init__(self, *, error_text: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error_text = error_text

    def execute(self, context: Any) -> None:
        raise AirflowFailException(
            f"this flow document is invalid; fix it and the DAG reloads:\n{self.error_text}"
        )
