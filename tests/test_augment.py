"""Waveform augmentation and evaluation conditions (c2ser/data/augment.py), checked on measured values: the SNR of
each noise kind, the decay of an impulse response, the level kept in its volume bin, the telephone band, the
determinism per clip key, and the ``--condition`` parsing."""
import json

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt, welch

from c2ser.data.augment import (NOISE_KINDS, Augmenter, Condition, coloured_noise, key_rng, parse_condition,
                                synthetic_rir, telephone)
from c2ser.training.config import AugmentConfig

SR = 16000


def _voice(seconds: float, f0: float, amp: float, seed: int) -> np.ndarray:
    """A speech-like test signal: a harmonic tone with a syllable-rate envelope and a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t) ** 2
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * env
    x += 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """8 wav files at different levels, as manifest rows (babble and level tests)."""
    root = tmp_path_factory.mktemp("aug")
    rows = []
    for i in range(8):
        wav = _voice(1.2 + 0.1 * i, 110 + 20 * i, 0.05 + 0.08 * i, i)
        path = root / f"c{i}.wav"
        sf.write(path, wav, SR)
        rows.append({"key": f"c{i}", "audio": str(path), "speaker": "ab"[i % 2]})
    return rows


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_is_mixed_at_the_asked_snr(clips, kind, snr):
    clean = _voice(1.5, 150, 0.3, 99)
    mixed = Condition(f"noise:{kind}:{snr:g}", clips)(clean, {"key": "probe"})
    noise = mixed.astype(np.float64) - clean.astype(np.float64)
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr) < 0.5 and mixed.shape == clean.shape and mixed.dtype == np.float32


@pytest.mark.parametrize("kind,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_colours_have_their_spectral_slope(kind, slope):
    f, p = welch(coloured_noise(kind, 4 * SR, key_rng(kind)), SR, nperseg=2048)
    band = (f > 50) & (f < 7000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]  # log power per decade of frequency
    assert abs(fitted - slope) < 0.1


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_impulse_response_decays_60_db_over_rt60(rt60):
    """Schroeder's energy decay curve, fitted between -5 and -35 dB (T30), extrapolated to -60 dB. Tolerance 5 %:
    the tail is one Gaussian realisation whose expected decay is exact; over 20 keys per RT60 the estimate stayed
    within 1.6 % (a finite noise sample's EDC wiggles around the line), so 5 % fails only on a wrong decay."""
    for k in range(3):
        h = synthetic_rir(rt60, key_rng("rir", rt60, k))
        energy = np.cumsum((h ** 2)[::-1])[::-1]
        edc = 10 * np.log10(energy / energy[0])
        t = np.arange(len(h)) / SR
        fit = (edc <= -5) & (edc >= -35)
        estimated = -60 / np.polyfit(t[fit], edc[fit], 1)[0]
        assert estimated == pytest.approx(rt60, rel=0.05)
        assert h[0] == 1.0 and len(h) == round(1.5 * rt60 * SR)


def test_reverberation_keeps_length_and_power_and_spreads_energy_in_time():
    clean = np.zeros(SR, np.float32)
    clean[1000] = 1.0  # a click: after reverberation its energy lasts
    wet = Condition("reverb:0.6")(clean, {"key": "k"})
    assert wet.shape == clean.shape and np.mean(wet.astype(np.float64) ** 2) == pytest.approx(1 / SR, rel=1e-4)
    assert np.abs(wet[: 1000]).max() < 1e-9 and np.abs(wet[5000:9000]).max() > 1e-3


def test_telephone_band_attenuates_outside_300_3400_hz():
    x = key_rng("tel").standard_normal(2 * SR).astype(np.float32)
    y = telephone(x)
    f, p_in = welch(x, SR, nperseg=1024)
    _, p_out = welch(y, SR, nperseg=1024)
    gain = 10 * np.log10(p_out / p_in)
    assert y.shape == x.shape
    assert np.all(np.abs(gain[(f >= 500) & (f <= 3000)] - gain[(f >= 500) & (f <= 3000)].mean()) < 1.0)  # flat band
    assert gain[(f >= 500) & (f <= 3000)].mean() - gain[(f >= 30) & (f <= 150)].max() > 30
    assert gain[(f >= 500) & (f <= 3000)].mean() - gain[f >= 3800].max() > 40


def _lufs(wav):
    return pyloudnorm.Meter(SR).integrated_loudness(wav.astype(np.float64))


def _bin(v, mu, sd):
    return "low" if v < mu - sd else "high" if v > mu + sd else "medium"


def _bin_per_speaker(rows, field, bin_field):
    """style[bin_field] at μ ± σ of style[field] over each speaker's rows (as cot_labels.py --group-by speaker)."""
    for spk in {r["speaker"] for r in rows}:
        vals = np.array([r["style"][field] for r in rows if r["speaker"] == spk])
        for r in rows:
            if r["speaker"] == spk:
                r["style"][bin_field] = _bin(r["style"][field], vals.mean(), vals.std())


def test_level_change_stays_within_range_and_keeps_the_volume_bin(clips):
    # style measured and binned here (per speaker, as cot_labels.py --group-by speaker), independently of augment.py
    rows = [dict(r, style={"loudness_lufs": _lufs(sf.read(r["audio"], dtype="float32")[0])}) for r in clips]
    _bin_per_speaker(rows, "loudness_lufs", "volume_bin")
    assert {r["style"]["volume_bin"] for r in rows} == {"low", "medium", "high"}
    cfg = AugmentConfig(enabled=True, gain_prob=1.0, noise_prob=0.5, reverb_prob=0.3, gain_db=[-6.0, 6.0],
                        volume_group_by="speaker")
    aug = Augmenter(cfg, rows, seed=3)
    assert aug.unbounded == 0
    changes = []
    for r in rows:
        vals = np.array([q["style"]["loudness_lufs"] for q in rows if q["speaker"] == r["speaker"]])
        wav = sf.read(r["audio"], dtype="float32")[0]
        for epoch in range(4):
            out = aug(wav, r, epoch)
            delta = _lufs(out) - r["style"]["loudness_lufs"]
            assert -6.0 - 1e-6 <= delta <= 6.0 + 1e-6
            assert _bin(_lufs(out), vals.mean(), vals.std()) == r["style"]["volume_bin"], (r["key"], epoch)
            changes.append(delta)
    assert max(changes) > 1.0 and min(changes) < -1.0  # the gain is really used, both ways


def _f0(wav):
    """Median pitch (Hz) of a clip, measured here with librosa's YIN (not augment.py's code)."""
    import librosa

    return float(np.median(librosa.yin(wav.astype(np.float64), fmin=60, fmax=600, sr=SR, frame_length=1024,
                                       hop_length=320)))


@pytest.mark.parametrize("pitch,pbin,expected", [
    (200.0, "medium", (-3.0, 2.9064)),     # edges 160 / 240 Hz: +3.1564 st to the top, less the 0.25 margin
    (260.0, "high", (-1.1357, 3.0)),       # down to 240 Hz: -1.3857 st + 0.25
    (150.0, "low", (-3.0, 0.8673)),        # up to 160 Hz: +1.1173 st - 0.25
    (239.0, "medium", (0.0, 0.0)),         # within the margin of the top edge: no shift
    (250.0, "medium", (0.0, 0.0))])        # outside its stored bin: no shift
def test_semitone_bounds_keep_the_pitch_bin(pitch, pbin, expected):
    from c2ser.data.augment import semitone_bounds

    assert semitone_bounds(pitch, pbin, 200.0, 40.0, (-3.0, 3.0), 0.25) == pytest.approx(expected, abs=1e-4)


def test_pitch_shift_moves_the_measured_pitch_keeps_the_bin_length_and_loudness(clips):
    """pitch_prob: the measured pitch moves by the drawn semitones (YIN, within 0.2 st), stays in its per-speaker
    pitch bin (binned here from YIN), the clip keeps its length and stored loudness; both directions are used."""
    rows = []
    for r in clips:
        wav = sf.read(r["audio"], dtype="float32")[0]
        rows.append(dict(r, style={"pitch_hz": _f0(wav), "loudness_lufs": _lufs(wav)}))
    _bin_per_speaker(rows, "pitch_hz", "pitch_bin")
    _bin_per_speaker(rows, "loudness_lufs", "volume_bin")
    assert {r["style"]["pitch_bin"] for r in rows} == {"low", "medium", "high"}
    cfg = AugmentConfig(enabled=True, noise_prob=0.0, reverb_prob=0.0, gain_prob=0.0, pitch_prob=1.0,
                        pitch_semitones=[-3.0, 3.0], volume_group_by="speaker")
    aug = Augmenter(cfg, rows, seed=4)
    assert len(aug.pitch_bounds) == len(rows)
    shifts = []
    for r in rows:
        f0s = np.array([q["style"]["pitch_hz"] for q in rows if q["speaker"] == r["speaker"]])
        wav = sf.read(r["audio"], dtype="float32")[0]
        for epoch in range(2):
            out = aug(wav, r, epoch)
            asked = aug.pitch_shift(r["key"], epoch)
            measured = 12 * np.log2(_f0(out) / r["style"]["pitch_hz"])
            assert len(out) == len(wav) and abs(measured - asked) < 0.2, (r["key"], epoch, asked, measured)
            assert -3.0 <= asked <= 3.0
            assert _bin(_f0(out), f0s.mean(), f0s.std()) == r["style"]["pitch_bin"], (r["key"], epoch)
            assert abs(_lufs(out) - r["style"]["loudness_lufs"]) < 0.05
            shifts.append(asked)
    again = Augmenter(cfg, rows[::-1], seed=4)   # per (seed, epoch, key): row order does not matter, the seed does
    assert np.array_equal(again(wav, r, 1), out) and not np.allclose(Augmenter(cfg, rows, seed=5)(wav, r, 1), out)
    assert max(shifts) > 1.0 and min(shifts) < -1.0
    off = Augmenter(AugmentConfig(enabled=True, noise_prob=0.0, reverb_prob=0.0, gain_prob=0.0), rows, seed=4)
    wav = sf.read(rows[2]["audio"], dtype="float32")[0]
    assert off.pitch_shift(rows[2]["key"], 0) == 0.0 and off(wav, rows[2], 0) is wav    # off by default


def _group(key, wav_path, pitches, rates=None, text=""):
    """Rows of one speaker (named ``key``): the first is the clip under test, the others only set its μ ± σ."""
    rows = []
    for i, f0 in enumerate(pitches):
        st = {"pitch_hz": f0}
        if rates is not None:
            st["rate"] = rates[i]
        rows.append({"key": key if i == 0 else f"{key}-other{i}", "audio": wav_path, "speaker": key, "text": text,
                     "language": "en", "style": st})
    _bin_per_speaker(rows, "pitch_hz", "pitch_bin")
    if rates is not None:
        _bin_per_speaker(rows, "rate", "pace_bin")
    return rows


def test_pitch_shift_is_undone_when_the_shifted_clip_leaves_the_targets_pitch_or_pace_bin(tmp_path):
    """The shifted clip is measured again: a shift whose result leaves the target's pitch or pace bin is undone
    (the clip is heard unshifted). Stored styles are set by hand here: true ones, and ones the audio contradicts."""
    cfg = AugmentConfig(enabled=True, noise_prob=0.0, reverb_prob=0.0, gain_prob=0.0, pitch_prob=1.0,
                        volume_group_by="speaker")
    # a steady 300 Hz voice (its measured pitch: 300 Hz)
    wav = _voice(1.5, 300.0, 0.3, 0)
    sf.write(tmp_path / "v.wav", wav, SR)
    v = str(tmp_path / "v.wav")
    # stored 300 Hz among 250, 300, 350: μ 300, σ 35.4, medium = 264.6-335.4 Hz; shifts of at most ±2.2 st keep it
    true_rows = _group("true", v, [300.0, 250.0, 300.0, 350.0])
    # stored 200 Hz among 160, 200, 240 (medium = 171.7-228.3 Hz): any allowed shift (-2.4 to +2.0 st) of the
    # real 300 Hz stays above 228 Hz, outside the target's bin
    false_rows = _group("false", v, [200.0, 160.0, 200.0, 240.0])
    aug = Augmenter(cfg, true_rows + false_rows, seed=1)
    kept, undone = [], []
    for epoch in range(4):
        asked = aug.pitch_shift("true", epoch)
        kept.append((asked, 12 * np.log2(_f0(aug(wav, true_rows[0], epoch)) / 300.0)))
        asked = aug.pitch_shift("false", epoch)
        undone.append((asked, 12 * np.log2(_f0(aug(wav, false_rows[0], epoch)) / 300.0)))
    assert all(abs(a) > 0.1 and abs(m - a) < 0.2 for a, m in kept), kept        # shifted as drawn
    assert all(abs(a) > 0.1 and abs(m) < 0.05 for a, m in undone), undone      # drawn, then undone

    # three 0.3 s syllables of a 210 Hz voice with 0.25 s pauses, "one two three": 3 syllables / 0.9 s of
    # speech = 3.3 per second
    word = _voice(0.3, 210.0, 0.3, 1)
    gap = np.zeros(4000, np.float32)
    speech = np.concatenate([word, gap, word, gap, word])
    sf.write(tmp_path / "w.wav", speech, SR)
    w = str(tmp_path / "w.wav")
    pitches = [210.0, 180.0, 210.0, 240.0]   # medium 188.8-231.2 Hz: shifts of at most ±1.6 st keep the pitch
    # stored 3.33 among 1.0, 3.33, 5.66 (μ 3.33, σ 1.65): medium, as measured
    paced = _group("paced", w, pitches, rates=[3.33, 1.0, 3.33, 5.66], text="one two three")
    # stored 9 among 1, 2, 3 (μ 3.75, σ 3.03): high (above 6.8), which a clip read at 3.3 per second contradicts
    rushed = _group("rushed", w, pitches, rates=[9.0, 1.0, 2.0, 3.0], text="one two three")
    assert paced[0]["style"]["pace_bin"] == "medium" and rushed[0]["style"]["pace_bin"] == "high"
    aug = Augmenter(cfg, paced + rushed, seed=2)
    for epoch in range(3):
        a, b = aug.pitch_shift("paced", epoch), aug.pitch_shift("rushed", epoch)
        assert abs(a) > 0.1 and abs(b) > 0.1
        assert abs(12 * np.log2(_f0(aug(speech, paced[0], epoch)[:4800]) / 210.0) - a) < 0.2
        assert np.allclose(aug(speech, rushed[0], epoch), speech, atol=2e-3)   # unshifted (level set back only)


def _share_outside(wav, lo_hz=150.0, hi_hz=3800.0):
    """Share of a clip's power below ``lo_hz`` or above ``hi_hz`` (numpy FFT)."""
    p = np.abs(np.fft.rfft(wav.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(wav), 1 / SR)
    return float(p[(f < lo_hz) | (f > hi_hz)].sum() / p.sum())


def test_telephone_band_in_training_follows_the_noise_and_keeps_the_level(clips):
    """telephone_prob: drawn per (seed, epoch, key) from its own generator; a drawn clip loses its power outside the
    300-3400 Hz band, after the noise (the same noise as without it) and at its stored loudness."""
    rows = [dict(r, style={"loudness_lufs": _lufs(sf.read(r["audio"], dtype="float32")[0])}) for r in clips]
    _bin_per_speaker(rows, "loudness_lufs", "volume_bin")
    base = dict(enabled=True, noise_prob=1.0, snr_db=[5.0, 5.0], noise_kinds=["white"], reverb_prob=0.0,
                gain_prob=0.0, volume_group_by="speaker")
    plain = Augmenter(AugmentConfig(**base), rows, seed=6)
    phoned = Augmenter(AugmentConfig(**base, telephone_prob=0.5), rows, seed=6)
    drawn, outside_before = 0, []
    for r in rows:
        wav = sf.read(r["audio"], dtype="float32")[0]
        outside_before.append(_share_outside(wav))
        for epoch in range(3):
            a, b = plain(wav, r, epoch), phoned(wav, r, epoch)
            if np.array_equal(a, b):
                continue
            drawn += 1
            assert _share_outside(b) < 0.01, (r["key"], epoch, _share_outside(b))
            assert abs(_lufs(b) - r["style"]["loudness_lufs"]) < 0.05
            # b = the telephone band of a's noisy clip: within the band, the two are the same signal
            band = sosfiltfilt(butter(6, (300.0, 3400.0), btype="bandpass", fs=SR, output="sos"), a.astype(np.float64))
            assert np.corrcoef(band, b)[0, 1] > 0.98, (r["key"], epoch)
    assert 6 <= drawn <= 18                      # about half of the 24 (clip, epoch) draws
    assert max(outside_before) > 0.2             # the low voices had their fundamental below 150 Hz


def test_pitch_shift_check_script_measures_the_shift_and_the_pace(tmp_path):
    """eval/pitch_shift_check.py on clips with silent pauses: the measured pitch moves by the asked ±2 semitones; at
    32 ms frames (the augmentation's) the speaking rate (syllables per second of speech) is kept within 5 %, at
    librosa's default 128 ms the smeared pauses read as speech over 10 % slower."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("psc", Path(__file__).parents[1] / "eval" / "pitch_shift_check.py")
    psc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(psc)
    rows = []
    for i, f0 in enumerate((140.0, 210.0)):
        word = _voice(0.3, f0, 0.3, i)
        wav = np.concatenate([word, np.zeros(4000, np.float32), word, np.zeros(4000, np.float32), word])
        sf.write(tmp_path / f"p{i}.wav", wav, SR)
        rows.append({"key": f"p{i}", "audio": str(tmp_path / f"p{i}.wav"), "text": "one two three", "language": "en"})
    got = psc.check(rows, 2.0, 512)
    assert got["pitch_err_max"] < 0.2 and 0.95 < got["rate_ratio_min"] <= got["rate_ratio_max"] < 1.05, got
    wide = psc.check(rows, 2.0, 2048)
    assert wide["pitch_err_max"] < 0.2 and wide["rate_ratio_max"] < 0.9, wide


def test_same_key_same_output_other_key_other_output_in_any_order(clips):
    wav = _voice(1.0, 140, 0.3, 5)
    cond = Condition("reverb:0.4+noise:babble:5", clips)
    first = [cond(wav, {"key": k}) for k in ("a", "b", "c")]
    again = Condition("reverb:0.4+noise:babble:5", clips[::-1])  # other row order, other call order
    later = {k: again(wav, {"key": k}) for k in ("c", "a", "b")}
    assert all(np.array_equal(x, later[k]) for x, k in zip(first, "abc"))
    assert not np.allclose(first[0], first[1])
    aug = Augmenter(AugmentConfig(enabled=True, noise_prob=1.0, reverb_prob=1.0, gain_prob=1.0), clips, seed=7)
    row = dict(clips[0])
    x0, x1 = aug(wav, row, 0), aug(wav, row, 1)
    assert np.array_equal(x0, Augmenter(aug.cfg, clips[::-1], seed=7)(wav, row, 0))
    assert not np.allclose(x0, x1) and not np.allclose(x0, Augmenter(aug.cfg, clips, seed=8)(wav, row, 0))


@pytest.mark.parametrize("spec,steps", [
    ("clean", []), ("noise:white:20", [("noise", "white", 20.0)]), ("noise:babble:-5", [("noise", "babble", -5.0)]),
    ("reverb:0.6", [("reverb", 0.6)]), ("telephone", [("telephone",)]),
    ("reverb:0.3+noise:pink:10", [("reverb", 0.3), ("noise", "pink", 10.0)])])
def test_condition_specs_parse(spec, steps):
    assert parse_condition(spec) == steps


@pytest.mark.parametrize("spec,why", [
    ("noise:white", "is not noise:KIND:SNR_DB"), ("noise:purple:10", "is not noise:KIND:SNR_DB"),
    ("noise:white:loud", "not a number"), ("reverb:0", "0 < RT60"), ("reverb:9", "0 < RT60"),
    ("telephone:8", "unknown condition"), ("echo", "unknown condition"), ("", "empty"),
    ("noise:white:nan", "not finite")])
def test_bad_condition_specs_get_one_line_listing_the_valid_forms(spec, why):
    with pytest.raises(ValueError) as e:
        parse_condition(spec)
    msg = str(e.value)
    assert why in msg and "valid forms: clean | noise:KIND:SNR_DB" in msg and "\n" not in msg


def test_eval_rejects_a_bad_condition_in_one_line(tmp_path, capsys):
    from c2ser.cli import main

    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"key": "a"}) + "\n")
    assert main(["eval", "--checkpoint", str(tmp_path), "--manifest", str(m), "--corpus", "synthetic",
                 "--out", str(tmp_path / "o"), "--condition", "noise:white"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--condition 'noise:white'" in err[0] and "valid forms" in err[0]


def test_augment_config_checks():
    from c2ser.testing import tiny_model_config
    from c2ser.training.config import DataConfig, TrainConfig

    with pytest.raises(ValueError, match="snr_db"):
        AugmentConfig(snr_db=[20.0, 5.0])
    with pytest.raises(ValueError, match="noise_kinds"):
        AugmentConfig(noise_kinds=["pinkish"])
    with pytest.raises(ValueError, match="pitch_semitones"):
        AugmentConfig(pitch_semitones=[1.0, 3.0])
    with pytest.raises(ValueError, match="pitch_prob"):
        AugmentConfig(pitch_prob=1.5)
    with pytest.raises(ValueError, match="telephone_prob"):
        AugmentConfig(telephone_prob=-0.1)
    with pytest.raises(ValueError, match="model.ssl.checkpoint"):  # cached SSL features are of clean audio
        TrainConfig(model=tiny_model_config({"whisper": "w", "llm": "l"}),
                    data=DataConfig(train_manifest="t", augment=AugmentConfig(enabled=True)))


def test_noise_files_are_found_recursively_and_mixed(clips, tmp_path):
    from c2ser.data.augment import noise_files

    (tmp_path / "noise" / "free-sound").mkdir(parents=True)
    t = np.arange(SR) / SR
    sf.write(tmp_path / "noise" / "free-sound" / "hum.flac", (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), SR)
    sf.write(tmp_path / "noise" / "hum.wav", (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), SR)
    (tmp_path / "noise" / "README.txt").write_text("not audio")
    assert [f.name for f in noise_files(tmp_path / "noise")] == ["hum.flac", "hum.wav"]
    cfg = AugmentConfig(enabled=True, noise_prob=1.0, reverb_prob=0.0, gain_prob=0.0, snr_db=[0.0, 0.0],
                        noise_dir=str(tmp_path / "noise"))
    clean = _voice(1.0, 200, 0.3, 1)
    out = Augmenter(cfg, clips, seed=0)(clean, {"key": "x"}, 0)
    f, p_clean = welch(clean, SR, nperseg=1024)
    _, p_out = welch(out, SR, nperseg=1024)
    at = np.argmin(np.abs(f - 3000))
    assert p_out[at] > 1000 * p_clean[at]  # the 3 kHz hum is in the mixture
    with pytest.raises(ValueError, match="no noise files"):
        (tmp_path / "empty").mkdir()
        noise_files(tmp_path / "empty")


class _Words:
    """A whitespace tokenizer: enough for the dataset's length bookkeeping."""
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1] * len(text.split())}


def test_training_items_carry_the_augmented_wave_for_both_encoders(clips, tmp_path):
    """With a wave transform, the item's mel and its ``wav`` (Emotion2Vec-S online) are of the same augmented clip,
    cached SSL features are not used, and an item does not depend on which items were read before it."""
    from c2ser.models.processor import C2SERProcessor
    from c2ser.training.data import ManifestDataset

    rows = [dict(r, duration=1.0, explicit_target="e", implicit_target="i") for r in clips[:3]]
    proc = C2SERProcessor(_Words(), 80, "crop")
    aug = Augmenter(AugmentConfig(enabled=True, noise_prob=1.0, reverb_prob=1.0), rows, seed=1)
    ds = ManifestDataset(rows, proc, str(tmp_path / "no-features-here"), True, wave_transform=aug, cache=True)
    plain = ManifestDataset(rows, proc, None, True)
    forward = [ds[i] for i in range(3)]
    backward = {i: ds[i] for i in (2, 1, 0)}   # cached clean waves now, other order
    for i, it in enumerate(forward):
        assert "ssl" not in it and np.array_equal(it["wav"], backward[i]["wav"])
        assert np.array_equal(it["mel"], proc.mel(it["wav"])) and np.array_equal(it["mel"], backward[i]["mel"])
        assert not np.allclose(it["wav"], plain[i]["wav"])
    ds.epoch = 1
    assert not np.allclose(ds[0]["wav"], forward[0]["wav"])  # a new draw each epoch


def test_clean_copies_put_each_clip_once_augmented_and_once_clean_in_an_epoch(clips):
    """data.augment.keep_clean: index i is clip i augmented (the Augmenter's draw for its key and epoch), index
    N + i is clip i as read from its file, for the mel and for Emotion2Vec-S's wave; the clean copy does not change
    with the epoch, the augmented one does."""
    from c2ser.models.processor import C2SERProcessor
    from c2ser.training.data import ManifestDataset

    rows = [dict(r, duration=1.0 + 0.5 * i, explicit_target="e", implicit_target="i") for i, r in enumerate(clips[:3])]
    proc = C2SERProcessor(_Words(), 80, "crop")
    aug = Augmenter(AugmentConfig(enabled=True, noise_prob=1.0, keep_clean=True), rows, seed=2)
    ds = ManifestDataset(rows, proc, None, True, wave_transform=aug, clean_copies=True, cache=True)
    assert len(ds) == 6 and ds.frames == [100, 150, 200] * 2 and ds.tokens[:3] == ds.tokens[3:]
    epoch0 = {}
    for i, r in enumerate(rows):
        clean = sf.read(r["audio"], dtype="float32")[0]
        noisy, copy = ds[i], ds[3 + i]
        assert copy["key"] == noisy["key"] == r["key"] and copy["index"] == 3 + i
        assert np.allclose(copy["wav"], clean, atol=1e-6) and np.array_equal(copy["mel"], proc.mel(copy["wav"]))
        assert np.array_equal(noisy["wav"], aug(clean, r, 0)) and not np.allclose(noisy["wav"], clean, atol=1e-3)
        assert np.array_equal(noisy["mel"], proc.mel(noisy["wav"]))
        epoch0[i], epoch0[3 + i] = noisy["wav"], copy["wav"]
    ds.epoch = 1
    for i in range(3):
        assert np.array_equal(ds[3 + i]["wav"], epoch0[3 + i]) and not np.allclose(ds[i]["wav"], epoch0[i], atol=1e-3)
    with pytest.raises(ValueError, match="clean_copies"):
        ManifestDataset(rows, proc, None, True, clean_copies=True)
