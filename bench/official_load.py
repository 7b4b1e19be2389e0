"""Benchmark: peak memory of loading an official-layout ``C2SER_llm.pt`` with ``load_official`` vs a naive load.

Writes a synthetic file in the released layout (official names, bf16, LoRA r8 on the official targets, the
release's extra keys and aliases; :func:`c2ser.testing.official_state_dict`) at the chosen size, then loads it in
FRESH processes started from bash (not forked from this big parent, whose pages would count): ours
(``load_official``: meta model, memory-mapped file, each tensor read once) and naive (``torch.load`` into memory,
model built with random weights, ``load_state_dict`` copies). Each worker records ``ru_maxrss`` after its imports
(the interpreter + libraries; ``VmHWM``) and at the end, after reading one value per memory page of every weight (what a
first forward does: file-backed pages count once read); the load's own peak = the difference, vs the file size.

    python bench/official_load.py --size tiny
    python bench/official_load.py --size small        # Qwen2-0.5B + Whisper-base widths, ~1.1 GB file
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import bench_model_config, build_whisper_checkpoint, emit, load_average, parser  # noqa: E402


def _rss_mib() -> float:
    """Peak RSS of this process image (MiB): ``VmHWM``, which starts afresh at exec. (``ru_maxrss`` survives
    fork + exec on Linux, so a child of a big parent reports the parent's size; it is kept as a cross-check.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def official_cfg(work: Path, size: str):
    """The official model config at ``size``, pointing at local stand-ins (Qwen2 dir: config + tiny tokenizer)."""
    from c2ser.inference.official import official_model_config

    spec = json.loads((work / "spec.json").read_text())
    cfg = official_model_config(str(work / "qwen2"), whisper=str(work / "whisper.pt"))
    cfg.ssl.dim = spec["ssl_dim"]
    if size == "tiny":
        cfg.adapter.num_blocks, cfg.adapter.ffn = 2, 128
    return cfg


def write_file(work: Path, size: str) -> Path:
    """A Qwen2 directory (config + tokenizer, no weights), a Whisper checkpoint and the official file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config

    from c2ser.models.build import apply_lora, load_tokenizer
    from c2ser.models.c2ser import C2SERModel
    from c2ser.models.whisper_encoder import WhisperEncoder
    from c2ser.testing import build_tiny_models, official_state_dict, tiny_model_config

    spec = bench_model_config(size)
    models = build_tiny_models(work / "tiny")
    shutil.copytree(models["llm"], work / "qwen2")
    if spec["llm"] is not None:
        tok = load_tokenizer(tiny_model_config(models).llm)
        for f in (work / "qwen2").glob("*.safetensors"):
            f.unlink()  # only the config and the tokenizer are read: every weight comes from the official file
        Qwen2Config(**spec["llm"], bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id).save_pretrained(work / "qwen2")
    build_whisper_checkpoint(size, work / "whisper.pt")
    width = WhisperEncoder.from_pretrained(str(work / "whisper.pt")).dim
    (work / "spec.json").write_text(json.dumps({"ssl_dim": min(768, width)}))
    cfg = official_cfg(work, size)
    cfg.llm.dtype = "bfloat16"
    tok = load_tokenizer(cfg.llm)
    torch.manual_seed(0)
    llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(work / "qwen2"), dtype=torch.bfloat16)
    model = C2SERModel(cfg, WhisperEncoder.from_pretrained(str(work / "whisper.pt")), apply_lora(llm, cfg.lora), tok)
    path = work / "C2SER_llm.pt"
    torch.save(official_state_dict(model), path)
    return path


def worker(mode: str, work: Path, size: str) -> None:
    """Runs in a fresh process: import, note the RSS, load, note the peak RSS; prints one JSON line."""
    import torch

    import peft  # noqa: F401 - every library the load uses is imported before the baseline is taken
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.qwen2 import modeling_qwen2  # noqa: F401

    from c2ser.inference.official import load_official
    from c2ser.models.build import load_tokenizer
    cfg = official_cfg(work, size)
    with torch.device("meta"):  # instantiate the classes once (lazy imports inside transformers/peft), no memory
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(work / "qwen2"))
    load_tokenizer(cfg.llm)
    base = _rss_mib()
    t = time.perf_counter()
    if mode == "ours":
        model = load_official(work / "C2SER_llm.pt", cfg)
    else:  # naive: the whole file in memory, a randomly initialised model, copy into it
        from c2ser.inference.official import convert_state_dict
        from c2ser.models.build import apply_lora
        from c2ser.models.c2ser import C2SERModel
        from c2ser.models.whisper_encoder import WhisperEncoder

        sd = torch.load(work / "C2SER_llm.pt", map_location="cpu", weights_only=True)
        llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(work / "qwen2"), dtype=torch.bfloat16)
        model = C2SERModel(cfg, WhisperEncoder.from_pretrained(str(work / "whisper.pt")), apply_lora(llm, cfg.lora),
                           load_tokenizer(cfg.llm))
        model.load_state_dict(convert_state_dict(sd, model.state_dict(), fill_missing=lambda keys: {}), strict=True)
    for w in model.state_dict().values():  # use every weight once (as a first forward does): its pages are read
        w.reshape(-1)[:: max(1, 4096 // w.element_size())].float().sum()
    n = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    print(json.dumps({"mode": mode, "base_mib": base, "peak_mib": _rss_mib(), "seconds": time.perf_counter() - t,
                      "model_mib": n / 2**20,
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        return write_file(Path(sys.argv[2]), sys.argv[3])
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--keep", help="write the file and its stand-ins here and keep them")
    args = p.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="official-load-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    path = work / "C2SER_llm.pt"
    if not path.is_file():  # written by a child: this parent stays small
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--write", str(work), args.size], env=env,
                       check=True, capture_output=True)
    file_mib = path.stat().st_size / 2**20
    results = {}
    for mode in ("ours", "naive"):
        cmd = f"exec {sys.executable} {Path(__file__).resolve()} --worker {mode} {work} {args.size}"
        r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, check=True)
        results[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for mode, name in (("ours", "load_official (meta model, mmap, each tensor once)"),
                       ("naive", "naive (torch.load + random model + load_state_dict)")):
        r = results[mode]
        own = r["peak_mib"] - r["base_mib"]
        rows.append([name, f"{r['seconds']:.1f}", f"{r['base_mib']:.0f}", f"{r['peak_mib']:.0f}", f"{own:.0f}",
                     f"{own / file_mib:.2f}×"])
    title = (f"Official checkpoint load, size={args.size}, synthetic C2SER_llm.pt of {file_mib:.0f} MiB (bf16); "
             f"each load in a fresh process started from bash; load average before {load_before}, after "
             f"{load_average()}")
    emit(args, title, ["loader", "time (s)", "RSS after imports (MiB)", "peak RSS (MiB)",
                       "peak − imports (MiB)", "÷ file size"], rows, file_mib=file_mib, results=results)


if __name__ == "__main__":
    main()
