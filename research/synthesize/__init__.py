"""`cogenesis data synthesize`: the paper's four-step dataset pipeline on any
OpenAI-compatible LLM (group portraits, individual profiles, writing tasks, texts)."""
