"""Speech encoders beyond Whisper: Emotion2Vec-S (data2vec 2.0 audio) without fairseq."""
