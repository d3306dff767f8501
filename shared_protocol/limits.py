"""Size limits both ends enforce. The cloud rejects anything larger with a 4xx."""

PROTOCOL_VERSION = "1"

# Sketch mode.
MAX_INSTRUCTION_CHARS = 2_000
MAX_SKETCH_POINTS = 12
MAX_POINT_CHARS = 400
MAX_SKETCH_TOKENS = 1_024

# Logits mode.
MAX_TOP_K = 20
MAX_PROMPT_CHARS = 8_000
MAX_PROMPT_TOKENS = 2_048
MAX_APPEND_TOKENS = 64
MAX_DRAFT_TOKENS = 16
MAX_SESSION_TOKENS = 4_096

# Any request body, in bytes.
MAX_BODY_BYTES = 64 * 1024
