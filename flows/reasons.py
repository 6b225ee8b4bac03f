"""Turning a Prefect state into the sentence an operator reads."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State


def failure_reason(state: State[Any]) -> str:
    """The exception message of a failed state, else its message."""
    try:
        state.result()
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return state.message or "unknown"
