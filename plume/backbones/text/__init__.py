"""Text conditioning: a word tokenizer and a small encoder trained with the model, or a frozen pretrained encoder
from `transformers` (local folder). `build_text_encoder(options)` makes either from the options a backbone's
`text` option holds (and config.json records)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from ...errors import PlumeError
from .encoder import TextEncoder
from .pretrained import PretrainedTextEncoder
from .tokenizer import PAD, START, WordTokenizer, vocabulary_of, words

TextEncoderModule = Union[TextEncoder, PretrainedTextEncoder]


def build_text_encoder(options: dict[str, Any]) -> TextEncoderModule:
    """TextEncoder for {"kind": "trained", "vocabulary": [...], ...}, PretrainedTextEncoder for
    {"kind": "pretrained", "path": ..., "max_tokens": ...}."""
    options = dict(options)
    kind = options.pop("kind", "trained")
    if kind == "trained":
        return TextEncoder(**options)
    if kind == "pretrained":
        return PretrainedTextEncoder(**options)
    raise PlumeError(f"text encoder kind must be 'trained' or 'pretrained', got {kind!r}")


def text_options(captions: Sequence[str], pretrained: Optional[str] = None, width: int = 128, depth: int = 2,
                 heads: int = 4) -> dict[str, Any]:
    """A backbone's `text` option for training on `captions`: a trained encoder over their vocabulary, reading the
    longest caption (at least 16 tokens), or the frozen pretrained encoder in the folder `pretrained`."""
    longest = max((len(words(c)) for c in captions), default=0) + 1  # + START
    max_tokens = max(16, longest)
    if pretrained is not None:
        return {"kind": "pretrained", "path": str(pretrained), "max_tokens": max(32, 2 * longest)}
    vocabulary = vocabulary_of(captions)
    if not vocabulary:
        raise PlumeError("the captions hold no words: a text-conditioned model needs captioned data")
    return {"kind": "trained", "vocabulary": vocabulary, "max_tokens": max_tokens, "width": width, "depth": depth,
            "heads": heads}


__all__ = ["PAD", "START", "PretrainedTextEncoder", "TextEncoder", "WordTokenizer", "build_text_encoder", "text_options",
           "vocabulary_of", "words"]
