"""Limits of the edge's own API, each defined here once (wire limits: shared_protocol.limits).

Request models, settings and routes import them, so a cap cannot drift between the
request a client sends and the default an operator configures.
"""

MAX_MESSAGES = 64  # messages in one chat completion request
MAX_MESSAGE_CHARS = 20_000  # characters of one message
MAX_USER_CHARS = 200  # the request's `user` field
MAX_COMPLETION_TOKENS = 4_096  # max_tokens / max_completion_tokens, and its default
MAX_TEMPERATURE = 2.0  # OpenAI's documented range is [0, 2]
MAX_SCHEDULE_STEPS = 4_096  # each of the schedule's P, K and T
MAX_LEDGER_PAGE = 500  # ledger entries in one page of GET /v1/ledger
