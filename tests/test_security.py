"""No file a user hands us runs code: every .pt/.pth/.npy loader refuses pickled calls, in every file format.

Each malicious file carries a pickle whose reduce would create a marker file (``os.system("touch ...")``,
``builtins.exec(...)`` or ``pathlib.Path.touch``). It is written three ways: a zip ``torch.save`` file, a legacy
(pre-1.6) ``torch.save`` file, and a legacy file whose FIRST pickle (where the magic number belongs) is the
payload. Loading must fail with one line naming the file and what it asked for, and the marker must not exist.
"""
import builtins
import os
import pathlib
import pickle
import types
from collections import OrderedDict

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from c2ser.encoders.emotion2vec_loading import load_emotion2vec
from c2ser.features import load_cached_features
from c2ser.inference.loading import audio_item
from c2ser.inference.official import read_official
from c2ser.models.whisper_encoder import WhisperEncoder
from c2ser.safe_io import load_features_npy, load_torch_file
from c2ser.testing import build_tiny_emotion2vec, build_tiny_whisper
from c2ser.training.data import load_ssl


class System:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Exec:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


class Touch:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


PAYLOADS = {System: "posix.system", Exec: "exec", Touch: "getattr"}  # the first global each pickle names
FORMATS = ("zip", "legacy", "legacy-first-pickle")


def _write(obj, payload, path, fmt):
    """``obj`` with the payload inside (zip / legacy), or a legacy file that starts with the payload."""
    if fmt == "legacy-first-pickle":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
        path.write_bytes(pickle.dumps(payload, protocol=2) + path.read_bytes())
        return path
    torch.save(dict(obj, payload=payload) if isinstance(obj, dict) else obj, path,
               _use_new_zipfile_serialization=fmt == "zip")
    return path


def _attack(tmp_path, obj, name, load, payload_cls, fmt):
    marker = tmp_path / "PWNED"
    path = _write(obj, payload_cls(marker), tmp_path / name, fmt)
    with pytest.raises(ValueError) as err:
        load(path)
    msg = str(err.value)
    assert not marker.exists(), "the file ran code"
    assert "\n" not in msg and name in msg
    assert f"refused to load: the file asks for {PAYLOADS[payload_cls]}" in msg


@pytest.fixture(scope="module")
def e2v(tmp_path_factory):
    path = build_tiny_emotion2vec(tmp_path_factory.mktemp("e2v") / "checkpoint.pt", seed=1)
    return torch.load(path, weights_only=False)  # our own freshly built file: trusted


@pytest.fixture(scope="module")
def whisper_ckpt(tmp_path_factory):
    path = build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny.pt")
    return torch.load(path, weights_only=False)


def _official_sd():
    g = torch.Generator().manual_seed(0)
    return OrderedDict((k, torch.randn(3, 4, generator=g).to(torch.bfloat16)) for k in ("a.weight", "b.bias"))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_emotion2vec_fairseq_checkpoint(tmp_path, e2v, payload, fmt):
    _attack(tmp_path, e2v, "checkpoint.pt", lambda p: load_emotion2vec(p, verbose=False), payload, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_funasr_model_dir(tmp_path, fmt):
    d = build_tiny_emotion2vec(tmp_path / "funasr", seed=1, fmt="funasr")
    sd = torch.load(d / "model.pt", weights_only=False)
    _attack(tmp_path, sd, "funasr/model.pt", lambda p: load_emotion2vec(p.parent, verbose=False), System, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", [System, Exec])
def test_whisper_checkpoint(tmp_path, whisper_ckpt, payload, fmt):
    _attack(tmp_path, whisper_ckpt, "whisper.pt", lambda p: WhisperEncoder.from_pretrained(str(p)), payload, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", [System, Touch])
def test_official_c2ser_file(tmp_path, payload, fmt):
    _attack(tmp_path, _official_sd(), "C2SER_llm.pt", read_official, payload, fmt)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_benign_checkpoints_still_load_with_equal_values(tmp_path, e2v, whisper_ckpt, fmt):
    zip_ = fmt == "zip"
    torch.save(e2v, tmp_path / "e2v.pt", _use_new_zipfile_serialization=zip_)
    own = load_emotion2vec(tmp_path / "e2v.pt", verbose=False).state_dict()
    for k in ("blocks.1.mlp.fc2.weight", "modality_encoders.AUDIO.extra_tokens"):
        assert torch.equal(own[k], e2v["model"][k])
    torch.save(whisper_ckpt, tmp_path / "w.pt", _use_new_zipfile_serialization=zip_)
    enc = WhisperEncoder.from_pretrained(str(tmp_path / "w.pt"))
    assert torch.equal(enc.encoder.conv1.weight, whisper_ckpt["model_state_dict"]["encoder.conv1.weight"])
    sd = _official_sd()
    torch.save(sd, tmp_path / "official.pt", _use_new_zipfile_serialization=zip_)
    got = read_official(tmp_path / "official.pt")
    assert list(got) == ["a.weight", "b.bias"] and all(torch.equal(got[k], sd[k]) for k in sd)
    assert got["a.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_fairseq_bookkeeping_types_are_allowed(tmp_path, e2v, fmt):
    """argparse args, an OmegaConf cfg and numpy meters: what fairseq/FunASR training checkpoints hold."""
    import argparse

    state = dict(e2v, args=argparse.Namespace(arch="data2vec_multi", lr=[5e-4]),
                 cfg=OmegaConf.create(e2v["cfg"]),
                 extra_state={"best": np.float64(0.25), "meters": np.arange(3, dtype=np.int64),
                              "loss": np.float32(1.5)})
    torch.save(state, tmp_path / "c.pt", _use_new_zipfile_serialization=fmt == "zip")
    obj = load_torch_file(tmp_path / "c.pt")
    assert obj["args"].arch == "data2vec_multi" and obj["args"].lr == [5e-4]
    assert OmegaConf.to_container(obj["cfg"])["model"]["depth"] == 2
    assert obj["extra_state"]["best"] == 0.25 and obj["extra_state"]["meters"].tolist() == [0, 1, 2]
    model = load_emotion2vec(tmp_path / "c.pt", verbose=False)
    assert model.cfg.norm_eps == 1e-5 and len(model.blocks) == 2


def test_numpy1_module_names_are_allowed(tmp_path):
    """A checkpoint written under numpy 1.x names ``numpy.core.multiarray`` (numpy 2: ``numpy._core``)."""
    torch.save({"best": np.float64(0.25), "arr": np.arange(3.0)}, tmp_path / "n2.pt",
               _use_new_zipfile_serialization=False)
    raw = (tmp_path / "n2.pt").read_bytes()
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "n1.pt").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    obj = load_torch_file(tmp_path / "n1.pt")
    assert obj["best"] == 0.25 and obj["arr"].tolist() == [0.0, 1.0, 2.0]


def test_unreadable_torch_files_are_one_line(tmp_path):
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"^\S*junk.pt: not a readable PyTorch checkpoint \(.+\)$"):
        load_torch_file(tmp_path / "junk.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut.pt: not a readable PyTorch Whisper checkpoint \(PytorchStreamReader"):
        load_torch_file(tmp_path / "cut.pt", "Whisper checkpoint")
    with pytest.raises(FileNotFoundError, match="absent.pt: checkpoint not found"):
        load_torch_file(tmp_path / "absent.pt")


# ---- cached features (.npy) ----

def _object_npy(path, marker):
    np.save(path, np.array([System(marker), 1.0], dtype=object), allow_pickle=True)
    return path


def test_npy_pickle_payload_is_refused_by_every_feature_reader(tmp_path):
    marker = tmp_path / "PWNED"
    feats = tmp_path / "feats"
    feats.mkdir()
    _object_npy(feats / "clip.npy", marker)
    (feats / "raw.npy").write_bytes(pickle.dumps(System(marker)))  # a bare pickle named .npy
    sf.write(tmp_path / "clip.wav", np.zeros(8000, np.float32), 16000)
    model = types.SimpleNamespace(cfg=types.SimpleNamespace(ssl=types.SimpleNamespace(enabled=True, num_tokens=10,
                                                                                       dim=4)), ssl_encoder=None)
    readers = {"load_features_npy": lambda: load_features_npy(feats / "clip.npy"),
               "train data (load_ssl)": lambda: load_ssl(feats, "clip"),
               "features cache": lambda: load_cached_features(feats, "clip"),
               "inference (audio_item)": lambda: audio_item(tmp_path / "clip.wav", model, feats)}
    for name, read in readers.items():
        with pytest.raises(ValueError, match=r"clip.npy: not a readable .npy feature array \(it holds pickled"):
            read()
    with pytest.raises(ValueError, match=r"raw.npy: not a .npy file"):
        load_features_npy(feats / "raw.npy")
    assert not marker.exists()


def test_npy_values_shape_and_finiteness(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    np.save(tmp_path / "ok.npy", x)
    got = load_features_npy(tmp_path / "ok.npy", expected_shape=(3, 4))
    assert got.dtype == np.float32 and np.array_equal(got, x.astype(np.float32))
    with pytest.raises(ValueError, match=r"ok.npy: features of shape \(3, 4\), expected \(10, 4\)"):
        load_features_npy(tmp_path / "ok.npy", expected_shape=(10, 4))
    x[1, 2] = np.nan
    x[0, 0] = np.inf
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(ValueError, match=r"nan.npy: features contain NaN or Inf \(2 values\)"):
        load_features_npy(tmp_path / "nan.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut.npy: not a readable .npy feature array"):
        load_features_npy(tmp_path / "cut.npy")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"s.npy: features of dtype <U1, expected real numbers"):
        load_features_npy(tmp_path / "s.npy")
    np.savez(tmp_path / "z.npz", a=x)
    with pytest.raises(ValueError, match=r"z.npz: a zip archive"):
        load_features_npy(tmp_path / "z.npz")
