"""The ``c2ser`` command line: one sub-command per task, each a thin wrapper over a typed library function.

Each entry of ``COMMANDS`` names a module with ``add_arguments(parser)`` and ``run(args)``; modules are
imported only when their command runs, so ``c2ser --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from c2ser.launch_guard import die_with_launcher

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "build-tiny": ("c2ser.commands.build_tiny", "build tiny random models (real formats) for demos and tests"),
    "extract-features": ("c2ser.commands.extract_features", "cache Emotion2Vec-S utterance features for a manifest"),
    "eval": ("c2ser.commands.eval", "evaluate a checkpoint on a manifest: predictions, metrics, report"),
    "results": ("c2ser.commands.results", "collect evaluation results into one Markdown table"),
    "validate-manifest": ("c2ser.commands.validate_manifest", "check a manifest for missing fields, labels, files"),
    "train-head": ("c2ser.commands.train_head", "train a Gen-SER (or CE baseline) output head on a frozen backbone"),
    "score": ("c2ser.commands.score", "score an existing predictions file"),
    "train": ("c2ser.commands.train", "train one stage (explicit CoT, self-distillation, implicit) under accelerate"),
    "average": ("c2ser.commands.average", "average the trained weights of several checkpoints of one run"),
    "plan": ("c2ser.commands.plan", "per-GPU training memory of a config (meta-device model) and whether it fits"),
    "predict": ("c2ser.commands.predict", "emotion of audio files (implicit, explicit or gen-ser)"),
    "chat": ("c2ser.commands.chat", "interactive multi-turn chat about a clip"),
    "web": ("c2ser.commands.web", "local gradio web demo (127.0.0.1)"),
}


def main(argv: list[str] | None = None) -> int:
    die_with_launcher()  # first: a worker of accelerate launch / torchrun must not outlive it (c2ser/launch_guard.py)
    parser = argparse.ArgumentParser(prog="c2ser", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the error
        return 2
    name = argv[0]
    mod = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"c2ser {name}", description=COMMANDS[name][1])
    mod.add_arguments(cmd_parser)
    args = cmd_parser.parse_intermixed_args(argv[1:])  # options and key=value overrides in any order
    try:
        return int(mod.run(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as e:  # user errors: one clear line, no traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"c2ser {name}: error: {msg}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk or read-only output where no writer caught it (e.g. creating the folder)
        from c2ser.atomic import is_write_failure, write_error

        if not is_write_failure(e):
            raise
        print(f"c2ser {name}: error: {write_error(e.filename or '?', e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
