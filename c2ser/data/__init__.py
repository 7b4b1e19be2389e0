"""Data: the manifest format, corpus preparation helpers, the synthetic corpus and chain-of-thought labels."""
