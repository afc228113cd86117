"""A loaded summarizer: checkpoint + frozen encoder + tokenizer, ready to write TL;DRs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ml.device import autocast, pick_device
from ml.summarizer import checkpoint
from ml.summarizer.data import pad
from ml.summarizer.decode import beam_search, greedy
from ml.summarizer.model import ModelConfig, Summarizer, word_embeddings
from ml.summarizer.text import TASKS, Task, detokenize, encode_sources, load_tokenizer, recase

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: A TL;DR is about 20 words (~30 word pieces); titles are shorter.
MAX_NEW_TOKENS = {"tldr": 40, "title": 32}
#: Word pieces written before the end token may be chosen.
MIN_NEW_TOKENS = 4


class LoadedSummarizer:
    def __init__(
        self,
        model: Summarizer,
        encoder: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        version: str,
        device: torch.device,
    ) -> None:
        self.model, self.encoder, self.tokenizer = model.eval(), encoder.eval(), tokenizer
        self.version, self.device = version, device

    @classmethod
    def from_checkpoint(cls, path: Path, device: str = "auto") -> LoadedSummarizer:
        ckpt = checkpoint.read(Path(path))
        return cls.build(ckpt.config, ckpt.state, ckpt.version, device)

    @classmethod
    def build(
        cls,
        cfg: ModelConfig,
        state: dict[str, torch.Tensor] | None,
        version: str,
        device: str = "auto",
        encoder: nn.Module | None = None,
    ) -> LoadedSummarizer:
        from ml.summarizer.model import load_encoder

        dev = pick_device(device)
        encoder = encoder if encoder is not None else load_encoder(cfg.encoder)
        model = Summarizer(cfg, word_embeddings(encoder))
        if state is not None:
            model.load_state_dict(state)
        return cls(model.to(dev), encoder.to(dev), load_tokenizer(cfg.encoder), version, dev)

    def summarize(
        self,
        items: Sequence[tuple[str, str]],
        *,
        beams: int = 1,
        batch_size: int = 32,
        task: Task = "tldr",
        min_tokens: int = MIN_NEW_TOKENS,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """One TL;DR per (title, abstract), in order. Sources are batched by length so
        little is padding; the output does not depend on the batching."""
        sources = encode_sources(
            self.tokenizer,
            [t for t, _ in items],
            [a for _, a in items],
            task,
        )
        order = sorted(range(len(items)), key=lambda i: len(sources[i]))
        out = [""] * len(items)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, ids in zip(
                idx, self.generate([sources[i] for i in idx], task, beams, min_tokens), strict=True
            ):
                text = detokenize(self.tokenizer, ids)
                out[i] = recase(text, *items[i])
            if progress:
                progress(len(idx))
        return out

    @torch.inference_mode()
    def generate(
        self, sources: list[list[int]], task: Task, beams: int, min_tokens: int = MIN_NEW_TOKENS
    ) -> list[list[int]]:
        ids, mask = pad(sources)
        ids, mask = ids.to(self.device), mask.to(self.device)
        task_ids = torch.full((len(sources),), TASKS[task], dtype=torch.long, device=self.device)
        with autocast(self.device):
            states = self.encoder(input_ids=ids, attention_mask=mask)[0]
        # The decoder always runs in fp32: as in training, only the encoder is bf16.
        states = states.to(torch.float16).float()
        mem = self.model.memory(states, ids, mask)
        max_len = MAX_NEW_TOKENS[task]
        if beams > 1:
            return beam_search(self.model, mem, task_ids, max_len, beams=beams, min_len=min_tokens)
        return greedy(self.model, mem, task_ids, max_len, min_len=min_tokens)
