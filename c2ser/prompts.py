"""Task prompts (the official C2SER strings: the released checkpoint was trained on them)."""

EXPLICIT_PROMPT = "Please describe the speaking style, content, and the speaker's emotional state of this speech."
IMPLICIT_PROMPT = ("Please consider the speaking style, content, and directly provide the speaker's emotion "
                   "in this speech.")
# Short task prompt for the non-autoregressive Gen-SER / CE heads (prefill only, no decoding).
GEN_SER_PROMPT = "emotion:"

PROMPTS = {"explicit": EXPLICIT_PROMPT, "implicit": IMPLICIT_PROMPT, "gen-ser": GEN_SER_PROMPT}
