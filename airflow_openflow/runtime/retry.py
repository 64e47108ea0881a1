"""Windmill's retry rules (spec 2.2): how many times, how long to wait, and ``retry_if``."""

from __future__ import annotations

import random

from airflow_openflow.spec.model import Retry

#: Windmill caps one retry interval at 6 hours (flow_status.rs).
MAX_INTERVAL_SECONDS = 6 * 3600


def retry_interval(retry: Retry, retries_done: int, *, rng: random.Random | None = None) -> float | None:
    """Seconds to wait before the next try, or None when no retry is left.

    ``retries_done`` is k, the number of retries already made for this step (0 before the first
    retry). The constant attempts come first, then ``multiplier * seconds ** (k + 1)`` with
    ``random_factor`` percent of uniform jitter; e.g. exponential {attempts 3, multiplier 1,
    seconds 2} waits 2, 4, 8 s.
    """
    constant, exponential = retry.constant, retry.exponential
    constant_attempts = constant.attempts if constant else 0
    if constant is not None and retries_done < constant_attempts:
        return float(min(constant.seconds, MAX_INTERVAL_SECONDS))
    if exponential is not None and retries_done - constant_attempts < exponential.attempts:
        delay = float(exponential.multiplier) * float(exponential.seconds) ** (retries_done + 1)
        if exponential.random_factor:
            spread = delay * float(exponential.random_factor) / 100
            delay += (rng or random).uniform(-spread, spread)
        return max(0.0, min(delay, MAX_INTERVAL_SECONDS))
    return None
