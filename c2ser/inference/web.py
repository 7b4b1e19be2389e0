"""Local gradio demo: upload or record a clip → emotion with per-class scores, the explicit reasoning, a chat.

Scores come from a Gen-SER head when the checkpoint has one (``head/``), otherwise from the LLM's next-token
probabilities of the label words after the implicit prompt (:func:`c2ser.inference.predict.label_word_scores`).
Uploads larger than ``max_upload_mb`` are refused by the server itself (gradio's ``max_file_size``: the upload
request gets HTTP 413); files that are not readable audio get a one-line message.
Serves on 127.0.0.1 only (the default of :func:`launch`); no usage analytics are sent.

Many users at once (:class:`ServeLimits`, the ``c2ser web`` options): gradio's queue runs at most ``concurrency``
analyses at a time (``default_concurrency_limit``) and holds at most ``max_queue`` waiting requests; one more is
refused at once with gradio's "Queue is full" message (HTTP 503 on ``queue/join``) instead of waiting unboundedly.
Memory stays bounded: each browser session has its own chat (a ``gr.State``, so one user's question is never
answered about another user's clip) and at most ``max_sessions`` sessions are kept, each for at most
``session_ttl_s`` seconds; uploaded files are deleted ``upload_ttl_s`` seconds after upload (gradio's
``delete_cache`` sweep, every tenth of that); nothing else is kept per request.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from c2ser.inference.chat import ChatSession
from c2ser.inference.loading import audio_item
from c2ser.inference.predict import head_scores, label_word_scores, load_head, parse_label
from c2ser.models.processor import to_device
from c2ser.prompts import PROMPTS


@dataclass
class ServeLimits:
    """How much the server takes on at once (see the module docstring); defaults = the ``c2ser web`` defaults."""

    concurrency: int = 1       # analyses / chat turns running at once (gradio's default_concurrency_limit)
    max_queue: int = 64        # requests waiting beyond those; one more gets "Queue is full" at once
    upload_ttl_s: int = 600    # uploaded files are deleted this long after upload
    max_sessions: int = 200    # browser sessions whose chat is kept (the oldest is dropped first)
    session_ttl_s: int = 3600  # a session's chat is dropped this long after its last change

    @property
    def upload_sweep_s(self) -> int:
        """How often old uploads are looked for: a tenth of their lifetime (1 s to 60 s), so none lives past 1.1 TTL."""
        return max(1, min(60, self.upload_ttl_s // 10))

    def __post_init__(self):
        for name in ("concurrency", "max_queue", "upload_ttl_s", "max_sessions", "session_ttl_s"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")


class DemoBackend:
    """Everything the page does, callable without gradio (tests, scripts)."""

    def __init__(self, model, processor, head_dir=None, ssl_features=None, max_upload_mb: float = 20.0,
                 max_new_tokens: int = 128):
        if not max_upload_mb > 0:
            raise ValueError(f"the upload limit must be a positive number of MB, got {max_upload_mb}")
        self.model, self.processor = model, processor
        self.head = load_head(head_dir) if head_dir and Path(head_dir).is_dir() else None
        self.max_bytes = int(max_upload_mb * 2**20)  # whole bytes: gradio takes an int (or a "20mb" string)
        self.ssl_features, self.max_new_tokens = ssl_features, max_new_tokens
        self.chat = ChatSession(model, processor, "explicit", max_new_tokens, ssl_features=ssl_features)

    def check_upload(self, path) -> None:
        if not path:
            raise ValueError("no audio: upload or record a clip first")
        size = Path(path).stat().st_size
        if size > self.max_bytes:
            raise ValueError(f"{Path(path).name}: {size / 2**20:.1f} MB is over the {self.max_bytes / 2**20:g} MB limit")

    def new_chat(self) -> ChatSession:
        return ChatSession(self.model, self.processor, "explicit", self.max_new_tokens, ssl_features=self.ssl_features)

    def analyze(self, path, chat: ChatSession | None = None) -> tuple[str, dict[str, float], str]:
        """(emotion, per-class scores, explicit reasoning) for a clip; also starts ``chat`` (default: ``self.chat``,
        the one chat of a single-user script) about it. The page gives every session its own chat."""
        self.check_upload(path)
        item = audio_item(path, self.model, self.ssl_features)  # AudioError (ValueError) for non-audio
        if self.head is not None:
            batch = to_device(self.processor.collate([dict(item, prompt=PROMPTS["gen-ser"])]), self.model.device)
            scores = head_scores(self.head, self.model, batch, [item["key"]])[0]
        else:
            scores = label_word_scores(self.model, self.processor, item)
        batch = to_device(self.processor.collate([dict(item, prompt=PROMPTS["explicit"])]), self.model.device)
        reasoning = self.model.generate(batch, max_new_tokens=self.max_new_tokens)[0]
        chat = self.chat if chat is None else chat
        chat.load_audio(path)
        chat.turns = []
        emotion = max(scores, key=scores.get)
        parsed = parse_label(reasoning)
        return emotion + (f" (reasoning says: {parsed})" if parsed and parsed != emotion else ""), scores, reasoning


def build_demo(backend: DemoBackend, limits: ServeLimits | None = None):
    import gradio as gr

    limits = limits or ServeLimits()

    def analyze(path):
        chat = backend.new_chat()
        try:
            emotion, scores, reasoning = backend.analyze(path, chat)
        except (ValueError, FileNotFoundError, OSError) as e:  # one line naming the upload, not the server's copy
            message = str(e).splitlines()[0].replace(str(Path(path).parent) + os.sep, "") if path else str(e)
            return f"Error: {message}", None, "", [], None
        return f"Emotion: {emotion}", scores, reasoning, [], chat

    def ask(question, history, chat):
        history = list(history or [])
        try:
            if chat is None:
                raise ValueError("no clip analyzed in this session yet: upload one and press Analyze")
            answer = chat.ask(question)
        except ValueError as e:
            answer = f"Error: {e}"
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return "", history, chat

    with gr.Blocks(title="C2SER demo", analytics_enabled=False,
                   delete_cache=(limits.upload_sweep_s, limits.upload_ttl_s)) as demo:
        chat_state = gr.State(None, time_to_live=limits.session_ttl_s)
        gr.Markdown("# C2SER: speech emotion with reasoning")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip")
        button = gr.Button("Analyze", elem_id="analyze")
        status = gr.Markdown(elem_id="status")
        scores = gr.Label(label="Per-class scores", num_top_classes=7)
        reasoning = gr.Textbox(label="Explicit reasoning", lines=4)
        chatbot = gr.Chatbot(label="Chat about the clip")
        question = gr.Textbox(label="Question", placeholder="why do you think so?", elem_id="question")
        button.click(analyze, audio, [status, scores, reasoning, chatbot, chat_state], api_name="analyze")
        question.submit(ask, [question, chatbot, chat_state], [question, chatbot, chat_state], api_name="ask")
    demo.queue(max_size=limits.max_queue, default_concurrency_limit=limits.concurrency)
    return demo


def launch(backend: DemoBackend, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
           stop: threading.Event | None = None, limits: ServeLimits | None = None):
    """Serve the page; with ``block`` wait until ``stop`` is set (or Ctrl-C), then close the server.

    ``c2ser web`` sets ``stop`` from its SIGTERM / SIGINT handlers, so a signal that arrives while gradio is still
    starting (its own start-up check runs inside ``demo.launch``) only ends the wait loop afterwards.
    """
    stop, limits = stop or threading.Event(), limits or ServeLimits()
    demo = build_demo(backend, limits)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False,
                max_file_size=backend.max_bytes, state_session_capacity=limits.max_sessions)
    if block:
        try:
            while demo.is_running:
                if stop.wait(0.2):
                    break
            print("c2ser web: stopped, closing the server", file=sys.stderr)
        except KeyboardInterrupt:
            print("c2ser web: interrupted, closing the server", file=sys.stderr)
        finally:
            demo.close()
    return demo
