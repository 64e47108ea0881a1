"""Windmill's retry delays on Airflow's retries (Airflow 3.3 ``retry_policy``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from airflow_openflow.runtime.retry import retry_interval
from airflow_openflow.spec.model import Retry


class WindmillRetryPolicy(RetryPolicy):
    """Gives each Airflow retry of a step the delay Windmill's ``retry`` asks for (spec 2.2).

    Try k+1 waits ``retry_interval(retry, k)``: the constant attempts first, then Windmill's
    exponential formula ``multiplier * seconds ** (k + 1)`` with its jitter. Airflow's own
    ``retry_exponential_backoff`` doubles a base delay instead, so it is not used. Airflow still
    counts the retries (``retries`` = all attempts of the ``retry``); past them the policy leaves
    the decision to Airflow's default. ``retry_if`` is evaluated by the step itself.

    :param retry: The step's ``retry`` (``spec.model.Retry``).
    """

    def __init__(self, retry: Retry) -> None:
        self.retry = retry

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        delay = retry_interval(self.retry, try_number - 1)
        if delay is None:
            return RetryDecision.default()
        return RetryDecision.retry(
            delay=timedelta(seconds=delay), reason=f"Windmill retry {try_number}: waiting {delay:g} s"
        )
