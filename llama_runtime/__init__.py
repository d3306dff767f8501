"""The llama.cpp runtime both ends share: one way to load, decode, cache and render.

The edge's small model (`edge_agent.slm`) and the cloud's llama.cpp engine
(`cloud_service.engines.llamacpp`) run the same library the same way, so the code that
talks to it lives here once. It imports neither end.

- `threads`: how many CPU threads a context uses.
- `model`: loading a GGUF with the settings that make decoding batch-invariant.
- `vocab`: token pieces, the tokenizer fingerprint, end-of-generation ids, control text.
- `control_text`: removing control-token text from message content (no llama.cpp).
- `chat_template`: the model's own chat template, rendered one way.
- `batching`: common prefix and batch splits (no llama.cpp).
- `kv_state`: saving and restoring a sequence's KV cells, with checked results.
- `context`: the live token sequence of one context and the calls that change it.

Modules are imported one by one: the pure ones (`control_text`, `batching`) load without
llama-cpp-python, for the vLLM engine.
"""
