"""The C2SER model: Whisper encoder → downsampler → (Emotion2Vec-S tokens) → adapter → LLM with LoRA."""
