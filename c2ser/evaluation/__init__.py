"""Evaluation: answer parsing, metrics, reports, stability, and batched inference over manifests."""
