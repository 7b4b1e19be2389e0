"""``c2ser chat``: terminal chat about a clip (/load PATH, /mode implicit|explicit, /reset, /quit; EOF exits)."""
from __future__ import annotations

import sys

from c2ser.commands._model_args import add_model_arguments, load_from_args, max_new_tokens

HELP = "commands: /load PATH, /mode implicit|explicit, /reset, /quit; anything else is a question about the clip"


def add_arguments(p) -> None:
    p.add_argument("--audio", help="clip to talk about (or /load it later)")
    p.add_argument("--mode", choices=("implicit", "explicit"), default="explicit")
    p.add_argument("--max-context", type=int, default=2048, help="token budget of the kept history")
    add_model_arguments(p)


def _say(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _load(chat, path: str) -> None:
    chat.load_audio(path)
    print(f"loaded {path}")
    if chat.cropped:
        print(f"c2ser chat: warning: {path}: longer than 30 s, only the first 30 s are used (cropped)",
              file=sys.stderr)


def run(args) -> int:
    from c2ser.inference.chat import ChatSession

    model, proc = load_from_args(args)
    chat = ChatSession(model, proc, args.mode, max_new_tokens(args, "chat"), args.max_context, args.ssl_features)
    print(HELP)
    if args.audio:
        _load(chat, args.audio)
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        cmd, _, rest = line.strip().partition(" ")
        try:
            if cmd == "/quit":
                return 0
            elif cmd == "/load":
                _load(chat, rest.strip())
            elif cmd == "/mode":
                chat.set_mode(rest.strip())
                print(f"mode {chat.mode} (used for an empty first question)")
            elif cmd == "/reset":
                chat.reset()
                print("conversation reset (clip kept)")
            elif cmd.startswith("/"):
                print(HELP)
            else:
                if chat.speech is None:
                    raise ValueError("no audio loaded: use /load PATH first")
                _say("c2ser> ")
                chat.ask(line, stream_callback=_say)
                _say("\n")
        except KeyboardInterrupt:
            print()
            return 0
        except (ValueError, FileNotFoundError) as e:
            print(f"c2ser chat: error: {e}", file=sys.stderr)
