"""Training: config, data pipeline (dynamic batching, SpecAugment), schedules and the accelerate loop."""
