"""The P/K/T schedule follows the paper's released FusionStrategy."""

from __future__ import annotations

import pytest

from edge_agent.collab.schedule import Schedule


def _paper(step: int, P: int, K: int, T: int) -> bool:
    # TsinghuaC3I/CoGenesis, src/logits/run_cogen_with_logits.py, FusionStrategy.__call__
    if step < P:
        return True
    phase = (step - K - 1) % (K + T)
    return 0 <= phase < T


@pytest.mark.parametrize("pkt", [(5, 10, 3), (1, 1, 1), (0, 2, 2), (3, 0, 1), (8, 4, 1)])
def test_schedule_matches_the_papers_formula(pkt):
    schedule = Schedule(*pkt)
    assert [schedule.should_call(s) for s in range(200)] == [_paper(s, *pkt) for s in range(200)]


def test_default_paper_schedule_fuses_the_warmup_then_three_in_thirteen():
    s = Schedule(P=5, K=10, T=3)
    fused = [i for i in range(40) if s.should_call(i)]
    assert fused == [0, 1, 2, 3, 4, 11, 12, 13, 24, 25, 26, 37, 38, 39]


def test_every_step_and_parse():
    assert all(Schedule.every_step().should_call(i) for i in range(100))
    assert Schedule.parse("every") == Schedule.every_step()
    assert Schedule.parse("5,10,3") == Schedule(5, 10, 3)
    assert str(Schedule(5, 10, 3)) == "5,10,3"
    assert Schedule(2, 1, 0).fraction(10) == 0.2
    with pytest.raises(ValueError):
        Schedule.parse("5,10")
    with pytest.raises(ValueError):
        Schedule(0, 0, 0)
