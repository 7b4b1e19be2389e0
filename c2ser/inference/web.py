"""Local gradio demo: upload or record a clip → emotion with per-class scores, the explicit reasoning, a chat.

Scores come from a Gen-SER head when the checkpoint has one (``head/``), otherwise from the LLM's next-token
probabilities of the label words after the implicit prompt (:func:`c2ser.inference.predict.label_word_scores`).
Uploads larger than ``max_upload_mb`` are refused by the server itself (gradio's ``max_file_size``: the upload
request gets HTTP 413); files that are not readable audio get a one-line message.
Serves on 127.0.0.1 only (the default of :func:`launch`); no usage analytics are sent.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

from c2ser.inference.chat import ChatSession
from c2ser.inference.loading import audio_item
from c2ser.inference.predict import head_scores, label_word_scores, load_head, parse_label
from c2ser.models.processor import to_device
from c2ser.prompts import PROMPTS


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

    def analyze(self, path) -> tuple[str, dict[str, float], str]:
        """(emotion, per-class scores, explicit reasoning) for a clip; also starts a chat about it."""
        self.check_upload(path)
        item = audio_item(path, self.model, self.ssl_features)  # AudioError (ValueError) for non-audio
        if self.head is not None:
            batch = to_device(self.processor.collate([dict(item, prompt=PROMPTS["gen-ser"])]), self.model.device)
            scores = head_scores(self.head, self.model, batch, [item["key"]])[0]
        else:
            scores = label_word_scores(self.model, self.processor, item)
        batch = to_device(self.processor.collate([dict(item, prompt=PROMPTS["explicit"])]), self.model.device)
        reasoning = self.model.generate(batch, max_new_tokens=self.max_new_tokens)[0]
        self.chat.load_audio(path)
        self.chat.turns = []
        emotion = max(scores, key=scores.get)
        parsed = parse_label(reasoning)
        return emotion + (f" (reasoning says: {parsed})" if parsed and parsed != emotion else ""), scores, reasoning


def build_demo(backend: DemoBackend):
    import gradio as gr

    def analyze(path):
        try:
            emotion, scores, reasoning = backend.analyze(path)
        except (ValueError, FileNotFoundError, OSError) as e:
            return f"Error: {str(e).splitlines()[0]}", None, "", []
        return f"Emotion: {emotion}", scores, reasoning, []

    def ask(question, history):
        history = list(history or [])
        try:
            answer = backend.chat.ask(question)
        except ValueError as e:
            answer = f"Error: {e}"
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return "", history

    with gr.Blocks(title="C2SER demo", analytics_enabled=False) as demo:
        gr.Markdown("# C2SER: speech emotion with reasoning")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip")
        button = gr.Button("Analyze", elem_id="analyze")
        status = gr.Markdown(elem_id="status")
        scores = gr.Label(label="Per-class scores", num_top_classes=7)
        reasoning = gr.Textbox(label="Explicit reasoning", lines=4)
        chatbot = gr.Chatbot(label="Chat about the clip")
        question = gr.Textbox(label="Question", placeholder="why do you think so?", elem_id="question")
        button.click(analyze, audio, [status, scores, reasoning, chatbot])
        question.submit(ask, [question, chatbot], [question, chatbot])
    return demo


def launch(backend: DemoBackend, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
           stop: threading.Event | None = None):
    """Serve the page; with ``block`` wait until ``stop`` is set (or Ctrl-C), then close the server.

    ``c2ser web`` sets ``stop`` from its SIGTERM / SIGINT handlers, so a signal that arrives while gradio is still
    starting (its own start-up check runs inside ``demo.launch``) only ends the wait loop afterwards.
    """
    stop = stop or threading.Event()
    demo = build_demo(backend)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False,
                max_file_size=backend.max_bytes)
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
