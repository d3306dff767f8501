"""Fixtures for the guard: the real Presidio engine, loaded once per test session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge_agent.guard import PrivacyGuard
from edge_agent.store import UserContext


@pytest.fixture(scope="session")
def guard() -> PrivacyGuard:
    shared = PrivacyGuard()
    shared.warm_up()
    return shared


def user_context(
    name: str = "Dana Whitfield",
    location: str = "Portland, Oregon",
    private: str = "Volunteers bi-monthly at the children's hospital charity",
    history: tuple[tuple[str, str], ...] = (),
    version: int = 1,
    **fields: str,
) -> UserContext:
    return UserContext(
        user_id="u_test",
        name=name,
        fields={
            "Age": "38",
            "Name": name,
            "Occupation": "Event Planner",
            "Location": location,
            "Privacy_info": private,
            **fields,
        },
        history=history,
        data_version=version,
    )


@pytest.fixture(name="make_ctx")
def make_ctx_fixture() -> Callable[..., UserContext]:
    """Builds a UserContext; see :func:`user_context`."""
    return user_context
