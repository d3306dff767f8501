"""Research tools: what a researcher runs and a user's request never needs.

Teacher-forced NLL (`research.nll`), gate training (`research.gate_training`), the
dataset reader they share (`research.dataset`) and their commands (`research.cli`).

This package may import `edge_agent` and `shared_protocol`, never `cloud_service`: it
talks to the cloud over HTTP through the edge's outbound client, as the edge does. No
module of `edge_agent` imports it (tests/architecture/test_research_isolation.py).
"""
