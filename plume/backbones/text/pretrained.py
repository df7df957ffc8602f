"""A frozen pretrained text encoder from Hugging Face `transformers`, loaded from a local folder (Imagen's recipe,
Saharia et al. 2022: a frozen language model's token embeddings feed cross-attention). Needs the optional extra
`pip install 'plume[text]'`; nothing is downloaded (local_files_only). Its weights stay in that folder: they are
not parameters of the backbone and are not saved in Plume's checkpoints, which record the folder's path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ...errors import PlumeError


class PretrainedTokenizer:
    """The folder's tokenizer, padded/truncated to max_tokens; ids (B, T) like WordTokenizer's."""

    def __init__(self, hf_tokenizer: Any, max_tokens: int):
        self.hf, self.max_tokens = hf_tokenizer, int(max_tokens)
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            raise PlumeError("encode takes a list of prompts; wrap a single prompt in a list")
        batch = self.hf(list(prompts), padding="max_length", truncation=True, max_length=self.max_tokens,
                        return_tensors="pt")
        return batch["input_ids"].long()  # (B, T)


class PretrainedTextEncoder(nn.Module):
    """transformers.AutoModel's last hidden state (B, T, hidden_size) as context; frozen and kept out of the
    module's parameters (and so of optimizers and checkpoints)."""

    def __init__(self, path: str, max_tokens: int = 32):
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as error:
            raise PlumeError("a pretrained text encoder needs transformers: pip install 'plume[text]'") from error
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise PlumeError(f"pretrained text encoder folder {folder} does not exist (give a folder written by "
                             "save_pretrained, holding config.json, the weights and the tokenizer files)")
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as error:
            raise PlumeError(f"cannot load a text encoder and tokenizer from {folder}: {error}") from None
        model = getattr(model, "text_model", model).eval().requires_grad_(False)  # CLIP: its text half
        self._model = [model]  # a list keeps it out of parameters() and state_dict()
        self.tokenizer = PretrainedTokenizer(hf_tokenizer, max_tokens)
        self.features = int(model.config.hidden_size)
        self._options = {"kind": "pretrained", "path": str(folder.resolve()), "max_tokens": int(max_tokens)}

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, T, D) and key mask (B, T) of token ids (B, T)."""
        model = self._model[0]
        if next(model.parameters()).device != ids.device:
            model.to(ids.device)
        mask = ids != self.tokenizer.pad_id  # (B, T)
        mask[:, 0] = True  # the first token (BOS/CLS) always counts, so the empty prompt attends to something
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, T, D)
        return hidden.float(), mask
