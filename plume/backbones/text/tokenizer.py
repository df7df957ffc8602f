"""A word-level tokenizer over a fixed vocabulary, for small captioned data sets (e.g. plume.images.shapes).

A prompt becomes `max_tokens` integer ids: START (1), then one id per word, then PAD (0) to the end. START is
always there, so the empty prompt "" is the sequence [START, PAD, ...]: the "no prompt" condition that
classifier-free guidance trains with label dropout and samples against (Ho & Salimans 2022). Words are the
lower-cased prompt split on whitespace, punctuation (, . ; : ! ?) dropped. An unknown word or a prompt longer than
max_tokens - 1 words is refused, naming the word and the prompt: a model cannot know a word it never saw.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence

import torch

from ...errors import PlumeError

PAD, START = 0, 1
SPECIAL = ("<pad>", "<start>")
_PUNCTUATION = re.compile(r"[,.;:!?]")


def words(text: str) -> list[str]:
    """The lower-case words of a prompt, punctuation dropped."""
    return _PUNCTUATION.sub(" ", str(text)).lower().split()


def vocabulary_of(texts: Iterable[str]) -> list[str]:
    """The sorted distinct words of some captions."""
    return sorted({w for text in texts for w in words(text)})


class WordTokenizer:
    """prompts -> ids (B, max_tokens): START, word ids (2 + index in `vocabulary`), PAD."""

    def __init__(self, vocabulary: Sequence[str], max_tokens: int):
        vocabulary = [str(w) for w in vocabulary]
        if not vocabulary or len(set(vocabulary)) != len(vocabulary) or any(words(w) != [w] for w in vocabulary):
            raise PlumeError("a tokenizer vocabulary must be a non-empty list of distinct lower-case words without "
                             f"spaces or punctuation, got {vocabulary[:12]}")
        if max_tokens < 2:
            raise PlumeError(f"max_tokens must be at least 2 (START and one word), got {max_tokens}")
        self.vocabulary, self.max_tokens = vocabulary, int(max_tokens)
        self.index = {w: i + len(SPECIAL) for i, w in enumerate(vocabulary)}

    @property
    def size(self) -> int:
        """Number of ids, special ones included."""
        return len(self.vocabulary) + len(SPECIAL)

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Ids (B, max_tokens) int64 of B prompts; refuses unknown words and over-long prompts with the prompt."""
        if isinstance(prompts, str):
            raise PlumeError("encode takes a list of prompts; wrap a single prompt in a list")
        ids = torch.full((len(prompts), self.max_tokens), PAD, dtype=torch.long)  # (B, T)
        ids[:, 0] = START
        for row, prompt in enumerate(prompts):
            found = words(prompt)
            unknown = [w for w in found if w not in self.index]
            if unknown:
                raise PlumeError(self._unknown_message(unknown[0], str(prompt)))
            if len(found) > self.max_tokens - 1:
                raise PlumeError(f"prompt {prompt!r} has {len(found)} words; this model reads at most "
                                 f"{self.max_tokens - 1}")
            ids[row, 1:1 + len(found)] = torch.tensor([self.index[w] for w in found], dtype=torch.long)
        return ids

    def decode(self, ids: torch.Tensor) -> list[str]:
        """The prompts of ids (B, T) (PAD and START dropped)."""
        return [" ".join(self.vocabulary[int(i) - len(SPECIAL)] for i in row if int(i) >= len(SPECIAL))
                for row in ids]

    def _unknown_message(self, word: str, prompt: str) -> str:
        close = difflib.get_close_matches(word, self.vocabulary, n=3)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        shown = ", ".join(self.vocabulary[:40]) + (", ..." if len(self.vocabulary) > 40 else "")
        return (f"unknown word {word!r} in prompt {prompt!r}{hint}. This model knows {len(self.vocabulary)} words, "
                f"those of its training captions: {shown}")
