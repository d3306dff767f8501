"""Past writings are chosen by BM25 relevance to the task, not by their place in the history."""

from __future__ import annotations

import numpy as np

from edge_agent.retrieval import BM25Index, HistoryIndex, HistoryIndexes, stems, term_ids

TOPICS = [
    ("Quarterly budget", "Spreadsheets, forecasts and the finance team's review of spending."),
    ("Garden diary", "Tomatoes, compost and the slugs that ate my lettuce again."),
    ("Marathon training", "Long runs, blisters, interval sessions and an ice bath."),
    ("Book club notes", "We argued about the unreliable narrator and the ending."),
    ("Kitchen renovation", "Tiles, a new sink and a plumber who never called back."),
    ("Chess tournament", "Sicilian defence, a blunder in the endgame, a draw."),
]


def sixty_writings() -> list[tuple[str, str]]:
    history = [
        (f"{title} {i}", f"{text} Entry {i} of my notes, written on a quiet evening.")
        for i, (title, text) in ((i, TOPICS[i % len(TOPICS)]) for i in range(59))
    ]
    history.append(
        (
            "Letter to the beekeeping society",
            "Our hives came through the winter; the queen bee in hive two is laying again "
            "and the honey harvest from the heather was the best in years.",
        )
    )
    return history


def test_the_relevant_writing_is_chosen_even_when_it_comes_last() -> None:
    index = HistoryIndex(sixty_writings())
    ranked = index.rank("Write a newsletter for my beekeeping club: how the hives wintered")
    assert ranked[0] == 59
    assert sorted(ranked) == list(range(60))


def test_bm25_prefers_the_rarer_term_and_ignores_unknown_ones() -> None:
    docs = [term_ids(stems(t)) for t in ["apple pear", "apple plum", "apple apple"]]
    index = BM25Index(docs)
    scores = index.scores(term_ids(stems("pear zebra")))
    assert scores.argmax() == 0 and scores[1] == scores[2] == 0
    assert np.all(index.scores(term_ids(stems("zebra"))) == 0)


def test_stems_pair_neighbours_but_not_across_punctuation() -> None:
    near = term_ids(stems("honey harvest"))
    apart = term_ids(stems("honey. harvest"))
    assert len(near) == 3 and len(apart) == 2  # two stems (+ one pair when adjacent)


def test_an_index_is_kept_per_history_version() -> None:
    indexes = HistoryIndexes(max_users=2)
    history = sixty_writings()
    assert indexes.get("u:1", history) is indexes.get("u:1", history)
    assert indexes.get("u:2", history[:10]).size == 10
