"""Configuration of a training run (one stage). Defaults = the official C2SER optimisation settings."""
from __future__ import annotations

from dataclasses import dataclass, field

from c2ser.models.config import ModelConfig


@dataclass
class DataConfig:
    train_manifest: str = "???"
    valid_manifest: str | None = None
    feature_dir: str | None = None          # cached Emotion2Vec-S features <feature_dir>/<key>.npy
    max_frames_in_batch: int = 3900         # longest mel × count (official cap)
    max_tokens_in_batch: int = 1900         # longest LLM sequence × count (official cap)
    max_batch_size: int = 64
    sort_buffer: int = 500                  # bucket clips of similar length inside shuffled pools of this size
    spec_augment: bool = True
    num_workers: int = 0
    max_valid_clips: int = 200              # clips decoded for validation accuracy each epoch
    max_duration: float | None = 30.0       # seconds; longer training clips are left out (counted in the log)
    check_audio: bool = True                # decode every clip up front (readable, finite, ≥ 25 ms); rows failing go
                                            # to rejects. Off for corpora already checked (validate-manifest --audio)
    max_reject_fraction: float = 0.05       # refuse to train when more of the manifest's rows are unusable
    chat_prompts: float = 0.0               # probability of a varied EN/ZH question (+ "why?" follow-up) per clip
    cache_features: bool = False            # keep each clip's log-mel and SSL features in memory after its first
                                            # load (small corpora, spec_augment off: the CPU demo)


@dataclass
class OptimConfig:
    lr: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-6
    weight_decay: float = 0.01
    scheduler: str = "warmup_inverse_sqrt"  # warmup_inverse_sqrt (official WarmupLR) | cosine | constant |
                                            # warmup_stable_decay
    warmup_steps: int = 8000
    grad_clip: float = 5.0
    grad_accum: int = 4


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # explicit = stage 1 (explicit CoT); distill = stage 2 (explicit → implicit, linear decay per batch);
    # implicit = implicit targets only
    task: str = "explicit"
    init_from: str | None = None            # checkpoint dir to start from (stage 2 starts from stage 1)
    output_dir: str = "exp/run"
    max_epochs: int = 1
    max_steps: int | None = None            # optimiser updates; stops the run early when set
    seed: int = 777
    save_every: int = 1250                  # updates between resumable training states
    log_every: int = 10
    valid_every: int = 1                    # epochs between validations (0 = only at the end)
    keep_states: int = 2
    max_new_tokens: int = 96                # validation decoding

    def __post_init__(self):
        if self.task not in ("explicit", "distill", "implicit"):
            raise ValueError(f"task={self.task!r}: expected explicit, distill or implicit")
