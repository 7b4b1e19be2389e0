"""The release's decoding rule: ``top_p=0.0`` under beam sampling keeps exactly two tokens per beam.

The logits processors are built the way ``generate()`` builds them (transformers' own ``GenerationConfig``, the
model's ``_prepare_generation_config`` / ``_prepare_special_tokens`` / ``_get_logits_processor``) from the preset's
settings, and applied to a score vector where three tokens tie at the second score.
"""
import pytest
import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from c2ser.evaluation.inference import decoding_settings
from c2ser.inference.official import PARITY_DECODING

pytestmark = pytest.mark.filterwarnings("ignore:Passing `repetition_penalty` with `inputs_embeds`")

EOS, VOCAB = 7, 16
# token 3 is best; tokens 5, 9 and 12 tie at the second score; the rest far below
SCORES = torch.full((VOCAB,), -4.0)
SCORES[3], SCORES[[5, 9, 12]] = 2.0, 1.0
PREVIOUS = torch.tensor([[0, 1]])  # tokens already generated (the repetition penalty touches only these)


@pytest.fixture(scope="module")
def llm():
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    return Qwen2ForCausalLM(cfg).eval()


def logits_processors(llm, settings: dict):
    """What generate() builds for ``settings`` (as C2SERModel.generate passes them; the prompt is given as
    embeddings, hence input_ids_seq_length 0: the release's case too)."""
    gen = {k: v for k, v in settings.items() if k not in ("preset", "seed")}
    config, _ = llm._prepare_generation_config(GenerationConfig(eos_token_id=EOS, pad_token_id=EOS, **gen))
    llm._prepare_special_tokens(config, device="cpu")
    return llm._get_logits_processor(config, input_ids_seq_length=0, encoder_input_ids=PREVIOUS, device="cpu",
                                     model_kwargs={})


def kept_tokens(llm, settings: dict) -> set[int]:
    """Tokens with a finite score after the logits processors generate() would run with ``settings``."""
    out = logits_processors(llm, settings)(PREVIOUS, torch.log_softmax(SCORES, -1)[None].clone())
    return set(torch.isfinite(out[0]).nonzero().flatten().tolist())


def test_release_rule_keeps_exactly_two_tokens_under_a_tie(llm):
    kept = kept_tokens(llm, decoding_settings("official", None, 777))
    assert len(kept) == 2 and 3 in kept and kept - {3} <= {5, 9, 12}


def test_top_k_2_would_keep_every_tied_token(llm):
    """The previous preset (top_k=2 instead of top_p=0.0): all three tokens tied at the second score survive."""
    old = dict(decoding_settings("official", None, 777), top_k=2, top_p=None)
    assert kept_tokens(llm, old) == {3, 5, 9, 12}


def test_parity_decoding_of_predict_is_the_eval_preset():
    """`c2ser predict --decoding parity` and `c2ser eval --decoding official` decode alike."""
    preset = decoding_settings("official", None, 777)
    assert {k: v for k, v in preset.items() if k not in ("preset", "seed")} == PARITY_DECODING
    assert (PARITY_DECODING["top_p"], PARITY_DECODING["top_k"]) == (0.0, 0)


def test_unset_top_k_would_not_be_the_release(llm):
    """Why top_k=0 is spelled out: transformers 5 fills an unset top_k with 50, which would add a warper the release
    (top_k=0) does not have. With the preset, the only sampling warper is top-p."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    procs = logits_processors(llm, decoding_settings("official", None, 777))
    top_p = [p for p in procs if isinstance(p, TopPLogitsWarper)]
    assert not any(isinstance(p, TopKLogitsWarper) for p in procs)
    assert len(top_p) == 1 and top_p[0].top_p == 0.0 and top_p[0].min_tokens_to_keep == 2
