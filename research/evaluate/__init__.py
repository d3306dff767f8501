"""`cogenesis eval run`: every mode of the gateway on a CoGenesis-format dataset, judged
by an LLM, with the reference NLL, leakage and cost; a report shaped like the paper's
Table 1 (Markdown, JSON and a chart)."""
