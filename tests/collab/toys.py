"""Fast stand-ins for the small model and the cloud, with the real session semantics.

The toy distributions depend on the last few tokens through a hash, so they are
deterministic, differ between the edge (private prompt) and the cloud (public prompt),
and agree often enough for drafts to be accepted.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass

import numpy as np

from edge_agent.outbound import CloudError, CloudUsage
from shared_protocol import (
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    TopK,
)

VOCAB = 64
EOS = 0


def _logits(tokens: list[int], salt: int, n_prompt: int) -> np.ndarray:
    key = zlib.crc32(np.asarray(tokens[-3:], dtype=np.int64).tobytes() + bytes([salt]))
    rng = np.random.default_rng(key)
    shared = np.random.default_rng(zlib.crc32(np.asarray(tokens[-2:]).tobytes()))
    x = 3.0 * shared.normal(size=VOCAB) + 1.5 * rng.normal(size=VOCAB)
    x[EOS] = -4.0 + 0.15 * (len(tokens) - n_prompt)  # answers end eventually
    return x


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return (x - np.log(np.exp(x).sum())).astype(np.float32)


@dataclass
class _Timer:
    seconds: float = 0.0


class ToyModel:
    """Implements the parts of SmallModel that the logits loop uses."""

    def __init__(self, salt: int = 1, n_ctx: int = 4096) -> None:
        self.salt = salt
        self.n_ctx = n_ctx
        self.lock = threading.RLock()
        self.timer = _Timer()
        self.vocab_size = VOCAB
        self._tokens: list[int] = []
        self._n_prompt = 0
        self.evals = 0

    @property
    def n_tokens(self) -> int:
        return len(self._tokens)

    def _lp(self) -> np.ndarray:
        self.evals += 1
        return log_softmax(_logits(self._tokens, self.salt, self._n_prompt))

    def start(self, tokens, *, prefix_key=None, prefix_len=0) -> np.ndarray:
        self._tokens = list(tokens)
        self._n_prompt = len(tokens)
        return self._lp()

    def append(self, tokens) -> np.ndarray:
        if len(self._tokens) + len(tokens) > self.n_ctx:
            raise RuntimeError("context full")
        self._tokens += list(tokens)
        return self._lp()

    def append_all(self, tokens, keep_last=None) -> np.ndarray:
        rows = [self.append([t]) for t in tokens]
        return np.stack(rows[-(keep_last or len(rows)) :])

    def append_exact(self, tokens) -> np.ndarray:
        return self.append_all(tokens)  # toy numbers never depend on batching

    def tokenize(self, text: str) -> list[int]:
        return [1 + (ord(c) % 60) for c in text]

    def render_chat(self, messages) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def rewind(self, n: int) -> None:
        del self._tokens[n:]

    def is_eos(self, token: int) -> bool:
        return token == EOS

    def detokenize(self, ids) -> bytes:
        return "".join(chr(65 + (t % 26)) for t in ids).encode()


def topk(lp: np.ndarray, k: int) -> TopK:
    ids = np.lexsort((np.arange(len(lp)), -lp))[:k]
    return TopK(token_ids=[int(i) for i in ids], logprobs=[float(lp[i]) for i in ids])


class ToyCloud:
    """A cloud client over a toy model, enforcing the session step semantics."""

    def __init__(
        self, salt: int = 2, fail_after_steps: int | None = None, delay_s: float = 0.0
    ) -> None:
        self.salt = salt
        self.delay_s = delay_s
        self.fail_after_steps = fail_after_steps
        self.sessions: dict[str, dict] = {}
        self.steps = 0
        self.closed: list[str] = []
        self.requests: list[object] = []
        self.step_guards: list[object] = []  # the ledger record each step call carried

    def _usage(self, usage: CloudUsage, req, reply) -> None:
        usage.calls += 1
        usage.bytes_up += len(req.model_dump_json(exclude_none=True)) if req else 0
        usage.bytes_down += len(reply.model_dump_json()) if reply else 0

    def _score(self, tokens: list[int], n_prompt: int) -> np.ndarray:
        return log_softmax(_logits(tokens, self.salt, n_prompt))

    def open_session(self, req: SessionOpenRequest, *, user_id, mode, usage, guard=None):
        self.requests.append(req)
        prompt = list(req.prompt_token_ids or [1 + (ord(c) % 60) for c in req.prompt])
        sid = f"s{len(self.sessions)}"
        self.sessions[sid] = {
            "committed": prompt,
            "draft": [],
            "n_prompt": len(prompt),
            "top_k": req.top_k,
        }
        reply = SessionOpenResponse(
            session_id=sid,
            prompt_tokens=len(prompt),
            top_k=req.top_k,
            idle_timeout_s=60.0,
            next=topk(self._score(prompt, len(prompt)), req.top_k),
        )
        self._usage(usage, req, reply)
        return reply

    def step(self, session_id: str, req: SessionStepRequest, *, user_id, mode, usage, guard=None):
        self.requests.append(req)
        self.step_guards.append(guard)
        self.steps += 1
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow cloud: the edge drafts ahead meanwhile
        if self.fail_after_steps is not None and self.steps > self.fail_after_steps:
            usage.calls += 1
            raise CloudError("toy cloud is down")
        s = self.sessions[session_id]
        assert req.accept <= len(s["draft"]), "accepted more than was drafted"
        s["committed"] = s["committed"] + s["draft"][: req.accept] + list(req.append)
        s["draft"] = list(req.draft) or self._propose(s, req.propose)
        k = req.top_k or s["top_k"]
        positions = [
            topk(self._score(s["committed"] + s["draft"][:i], s["n_prompt"]), k)
            for i in range(len(s["draft"]) + 1)
        ]
        reply = SessionStepResponse(
            positions=positions,
            session_tokens=len(s["committed"]),
            proposed=list(s["draft"]) if req.propose else None,
        )
        self._usage(usage, req, reply)
        return reply

    def _propose(self, s: dict, n: int) -> list[int]:
        """Greedy from the toy cloud's own distribution, ending before its EOS."""
        out: list[int] = []
        while len(out) < n:
            token = int(np.argmax(self._score(s["committed"] + out, s["n_prompt"])))
            if token == EOS:
                break
            out.append(token)
        return out

    def close_session(self, session_id: str, *, user_id, mode, usage) -> None:
        usage.calls += 1
        self.closed.append(session_id)

    def committed_answer(self, session_id: str) -> list[int]:
        s = self.sessions[session_id]
        return s["committed"][s["n_prompt"] :]
