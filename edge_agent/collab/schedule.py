"""The P/K/T schedule: on which decoding steps logits mode consults the cloud.

Definition (the paper's released code, `FusionStrategy` in
TsinghuaC3I/CoGenesis src/logits/run_cogen_with_logits.py), for a 0-based step s:

- s < P: collaborate (a warm-up prefix; the opening tokens shape the answer);
- otherwise collaborate iff ``(s - K - 1) mod (K + T) < T``: after the warm-up, K steps
  of the small model alone alternate with T collaborating steps. The cycle is anchored
  at absolute step K + 1, not at P, exactly as in that code.

So ``Schedule(P=5, K=10, T=3)`` (the code's default) fuses steps 0-4, 11-13, 24-26,
...; ``K=0`` fuses every step (`Schedule.every_step()`); ``P=K=T=1`` fuses step 0 and
then every even step. We keep the paper's formula rather than a simpler one so results
can be compared with the paper's P/K/T ablation.

On a step that does not collaborate the small model decides alone; the cloud learns the
token later (appended or accepted with the next call).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    P: int = 0
    K: int = 0
    T: int = 1

    def __post_init__(self) -> None:
        if self.P < 0 or self.K < 0 or self.T < 0:
            raise ValueError("P, K and T must be >= 0")
        if self.K + self.T == 0:
            raise ValueError("K + T must be positive")

    @classmethod
    def every_step(cls) -> Schedule:
        return cls(P=0, K=0, T=1)

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``"every"`` or ``"P,K,T"`` (e.g. ``"5,10,3"``)."""
        text = text.strip().lower()
        if text in {"every", "all", "always"}:
            return cls.every_step()
        try:
            p, k, t = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"schedule must be 'every' or 'P,K,T', got {text!r}") from None
        return cls(P=p, K=k, T=t)

    @property
    def always(self) -> bool:
        return self.K == 0 and self.T > 0

    def should_call(self, step: int) -> bool:
        """Whether step `step` (0-based index of the generated token) is fused."""
        if step < self.P:
            return True
        if self.T == 0:
            return False
        return (step - self.K - 1) % (self.K + self.T) < self.T

    def fraction(self, n_steps: int) -> float:
        """Share of the first `n_steps` steps that collaborate."""
        if n_steps <= 0:
            return 0.0
        return sum(self.should_call(s) for s in range(n_steps)) / n_steps

    def __str__(self) -> str:
        return "every" if self.always and self.P == 0 else f"{self.P},{self.K},{self.T}"
