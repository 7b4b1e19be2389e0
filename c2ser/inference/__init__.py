"""Inference: loading checkpoints (ours and the official release), prediction, chat, the web demo."""
