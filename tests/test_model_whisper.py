"""The variable-length Whisper encoder against openai-whisper itself."""
import numpy as np
import pytest
import torch
import whisper

from c2ser.models.whisper_encoder import WhisperEncoder, log_mel, pad_mels


@pytest.fixture(scope="module")
def encoders(tiny_models):
    ours = WhisperEncoder.from_pretrained(str(tiny_models["whisper"])).eval()
    ref = whisper.load_model(str(tiny_models["whisper"]), device="cpu").encoder.eval()
    return ours, ref


def _clip(seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_log_mel_equals_whisper_on_unpadded_audio():
    wav = _clip(2.37, 0)
    ours = log_mel(wav)
    ref = whisper.log_mel_spectrogram(torch.from_numpy(wav))
    assert ours.shape == (80, len(wav) // 160)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_30s_input_equals_openai_audio_encoder(encoders):
    ours, ref = encoders
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(_clip(12.0, 1))))[None]
    assert mel.shape[-1] == 3000
    with torch.no_grad():
        out, lengths = ours(mel)
        expected = ref(mel)
    assert out.shape == expected.shape == (1, 1500, 64) and lengths.tolist() == [1500]
    assert float((out - expected).abs().max()) < 1e-4
    assert float(expected.std()) > 0.1  # the comparison is not between two constants


def test_padded_batch_equals_clips_run_one_by_one(encoders):
    ours, _ = encoders
    mels = [log_mel(_clip(s, i)) for i, s in enumerate((1.03, 2.5, 0.71))]  # odd and even frame counts
    mel, lengths = pad_mels(mels)
    with torch.no_grad():
        batch, out_lengths = ours(mel, lengths)
        for i, m in enumerate(mels):
            solo, solo_len = ours(m[None])
            assert out_lengths[i] == solo_len[0] == (m.shape[-1] + 1) // 2
            assert float((batch[i, : solo.shape[1]] - solo[0]).abs().max()) < 1e-4


def test_long_audio_is_a_clear_error_or_cropped():
    wav = np.zeros(16000 * 31, dtype=np.float32)
    with pytest.raises(ValueError, match="longer than the Whisper encoder's 30 s"):
        log_mel(wav, name="clip.wav")
    assert log_mel(wav, long_audio="crop").shape[-1] == 3000
    with pytest.raises(ValueError, match="too short"):
        log_mel(np.zeros(100, dtype=np.float32))


def test_unknown_checkpoint_name_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Whisper checkpoint file nor a model name"):
        WhisperEncoder.from_pretrained(str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not an openai-whisper checkpoint"):
        WhisperEncoder.from_pretrained(str(bad))
