"""Both ends for real (the edge agent's fixtures), and the official openai client."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.edge.conftest import cloud, edge, guard, pool, start_edge  # noqa: F401 (fixtures)

PROFILE = {
    "name": "Marisol Okonkwo-Tran",
    "age": "41",
    "occupation": "Marine biologist",
    "location": "Halifax, Nova Scotia",
    "writing_style": "Warm, precise, fond of tidal metaphors",
    "private_information": "Sings in a sea-shanty choir every Thursday",
    "history": [{"title": "Field note", "text": "The kelp forest off Peggy's Cove was quiet."}],
}


def make_profile(agent, **overrides) -> str:
    reply = httpx.post(
        f"{agent.url}/v1/profiles",
        json={**PROFILE, **overrides},
        headers=agent.headers(),
        timeout=60,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def client_for(agent, user: str | None = None, **kwargs) -> openai.OpenAI:
    """The official client with the user's own key (the key names the user, so no
    `user` field is needed), or the edge's admin key."""
    key = agent.user_key(user) if user else agent.admin_key
    return openai.OpenAI(base_url=f"{agent.url}/v1", api_key=key, max_retries=0, **kwargs)


@pytest.fixture
def user(edge) -> str:  # noqa: F811 (the imported fixture)
    return make_profile(edge)
