"""c2ser: fine-tuning audio-language models for speech emotion recognition (C2SER + Gen-SER)."""
__version__ = "0.1.0"
