"""Configuration of a training run (one stage). Defaults = the official C2SER optimisation settings."""
from __future__ import annotations

from dataclasses import dataclass, field

from c2ser.models.config import ModelConfig


@dataclass
class AugmentConfig:
    """On-the-fly waveform augmentation of the training clips (c2ser/data/augment.py), drawn per (seed, epoch, key).
    Each clip gets, each with its probability: reverberation, additive noise, a gain that keeps its volume bin and
    (off by default) a pitch shift that keeps its pitch bin, and the telephone band."""
    enabled: bool = False
    noise_prob: float = 0.6
    snr_db: list[float] = field(default_factory=lambda: [5.0, 30.0])   # SNR drawn uniformly in [min, max]
    noise_dir: str | None = None            # wav/flac/mp3 files (recursive, MUSAN-style); None = noise_kinds
    noise_kinds: list[str] = field(default_factory=lambda: ["white", "pink", "brown", "babble"])
    babble_speakers: list[int] = field(default_factory=lambda: [3, 6])  # other training clips summed per babble
    reverb_prob: float = 0.3
    rt60: list[float] = field(default_factory=lambda: [0.2, 0.8])       # seconds, drawn uniformly
    gain_prob: float = 0.5
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])   # further bounded to the clip's volume bin
    volume_group_by: str | None = None      # the field the style bins were computed per (cot_labels --group-by)
    volume_margin_db: float = 0.5           # distance kept from the bin's edges
    # a pitch shift (same duration) bounded to the clip's pitch bin and undone when the clip, measured again, leaves
    # the target's pitch or pace bin: the target stays true; off
    pitch_prob: float = 0.0
    pitch_semitones: list[float] = field(default_factory=lambda: [-3.0, 3.0])   # further bounded to the pitch bin
    pitch_margin_st: float = 0.25           # semitones kept from the pitch bin's edges
    # the telephone band (300-3400 Hz at 8 kHz and back, as `c2ser eval --condition telephone`) after the noise: a
    # phone line carries the room and its noise; off
    telephone_prob: float = 0.0
    # also each clip clean, every epoch, beside its augmented copy (SpeechBrain's Augmenter concat_original; Kaldi's
    # recipes train on the clean and the augmented copies): an epoch has twice the clips
    keep_clean: bool = False

    def __post_init__(self):
        from c2ser.data.augment import NOISE_KINDS

        for name in ("noise_prob", "reverb_prob", "gain_prob", "pitch_prob", "telephone_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data.augment.{name}={getattr(self, name)}: expected a probability in [0, 1]")
        for name in ("snr_db", "rt60", "gain_db", "babble_speakers", "pitch_semitones"):
            r = getattr(self, name)
            if len(r) != 2 or r[0] > r[1]:
                raise ValueError(f"data.augment.{name}={list(r)}: expected [min, max] with min ≤ max")
        if not 0.0 < self.rt60[0] or self.rt60[1] > 3.0:
            raise ValueError(f"data.augment.rt60={list(self.rt60)}: expected seconds in (0, 3]")
        if self.gain_db[0] > 0.0 or self.gain_db[1] < 0.0:
            raise ValueError(f"data.augment.gain_db={list(self.gain_db)}: the range must contain 0 dB")
        if self.pitch_semitones[0] > 0.0 or self.pitch_semitones[1] < 0.0:
            raise ValueError(f"data.augment.pitch_semitones={list(self.pitch_semitones)}: the range must contain 0")
        if self.babble_speakers[0] < 1:
            raise ValueError(f"data.augment.babble_speakers={list(self.babble_speakers)}: at least 1 clip")
        bad = [k for k in self.noise_kinds if k not in NOISE_KINDS]
        if bad or not self.noise_kinds:
            raise ValueError(f"data.augment.noise_kinds={list(self.noise_kinds)}: expected some of "
                             f"{', '.join(NOISE_KINDS)}")


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
    augment: AugmentConfig = field(default_factory=AugmentConfig)   # off by default


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
    # > 0: the final weights are the mean of the trained weights at the ends of the last N epochs (WeNet's
    # average_num; each end kept in OUTPUT_DIR/epochs/epoch-E, the last one being the run's end); 0: the last update's
    average_last_epochs: int = 0
    max_new_tokens: int = 96                # validation decoding

    def __post_init__(self):
        if self.task not in ("explicit", "distill", "implicit"):
            raise ValueError(f"task={self.task!r}: expected explicit, distill or implicit")
        if self.average_last_epochs < 0:
            raise ValueError(f"average_last_epochs={self.average_last_epochs}: expected 0 (off) or a number of epochs")
        ssl = self.model.ssl
        if self.data.augment.enabled and ssl.enabled and not ssl.checkpoint:
            raise ValueError("data.augment.enabled=true needs Emotion2Vec-S online on the augmented audio (cached "
                             "features are of the clean clips): set model.ssl.checkpoint=PATH/checkpoint.pt")
