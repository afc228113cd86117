"""The summarizer network: frozen MiniLM encoder, a small pre-LN transformer decoder with
softmax cross-attention, and a copy (pointer) head.

Choices, and why:
- The encoder is frozen. SciTLDR has 1,992 training pairs; tuning 22M encoder weights on
  them overfits, and a frozen encoder lets training encode every source once and reuse it
  each epoch, which is what makes a CPU recipe finish in minutes.
- Input and output embeddings are MiniLM's word embeddings, frozen and tied: the output
  layer starts as a language-model head over the same 30,522 word pieces, and the same
  matrix is EMO's cost (ml.emo), so EMO's notion of "near" is the model's own.
- A pointer head mixes a copy distribution over the source word pieces into the output
  (p_gen · vocabulary + (1 − p_gen) · copy). TL;DRs reuse the abstract's rare terms, which
  a small decoder trained on two thousand examples cannot otherwise spell.
- Softmax attention throughout: a summarizer must lock onto a few source tokens, which
  linear attention cannot do (ml notes, section 4).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ml.summarizer.text import PACKAGED_ENCODER, TASKS

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Cache = list[dict[str, Tensor]]


@dataclass
class ModelConfig:
    #: The packaged MiniLM, or a local directory with another BERT-style checkpoint.
    encoder: str = PACKAGED_ENCODER
    encoder_width: int = 384
    vocab_size: int = 30522
    d_model: int = 384
    layers: int = 2
    heads: int = 6
    ffn: int = 1536
    dropout: float = 0.1
    max_target_tokens: int = 48
    copy: bool = True
    cls_id: int = 101
    sep_id: int = 102
    pad_id: int = 0
    #: Source ids the copy head never points at ([CLS], [SEP], [PAD]).
    no_copy_ids: list[int] = field(default_factory=lambda: [0, 101, 102])
    #: Ids the model never outputs: [PAD], [CLS], [UNK], [MASK] and the [unused…] slots.
    never_ids: list[int] = field(default_factory=lambda: [i for i in range(999) if i != 102])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def config_for(encoder: nn.Module, tokenizer: Any, name: str, **kw: Any) -> ModelConfig:
    """A decoder config that fits `encoder` and its tokenizer (any BERT-style checkpoint)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    never = [
        i
        for i, t in enumerate(vocab)
        if i != tokenizer.sep_token_id and (i in special or (t.startswith("[") and t.endswith("]")))
    ]
    # Encoders travel as nn.Module (PreTrainedModel's typing breaks `.to`), which knows
    # nothing of a Hugging Face model's config or embeddings.
    encoder_config = cast("PreTrainedModel", encoder).config
    return ModelConfig(
        encoder=name,
        encoder_width=encoder_config.hidden_size,
        vocab_size=encoder_config.vocab_size,
        cls_id=tokenizer.cls_token_id,
        sep_id=tokenizer.sep_token_id,
        pad_id=tokenizer.pad_token_id,
        no_copy_ids=sorted(
            {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id}
        ),
        never_ids=never,
        **kw,
    )


def word_embeddings(encoder: nn.Module) -> Tensor:
    """A BERT-style encoder's word-piece embedding table (vocab, width)."""
    table = cast("PreTrainedModel", encoder).get_input_embeddings()
    return cast(nn.Embedding, table).weight  # BERT's is a plain lookup table


def load_encoder(name: str) -> nn.Module:
    from transformers import AutoModel

    from ml.summarizer.text import encoder_dir

    model = AutoModel.from_pretrained(str(encoder_dir(name)))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.dropout = dropout

    def split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.dh).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
        q = self.split(self.q(x))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        b, _, t, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.ln_self, self.ln_cross, self.ln_ffn = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.heads, cfg.dropout)
        self.cross_attn = Attention(d, cfg.heads, cfg.dropout)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn), nn.GELU(), nn.Linear(cfg.ffn, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        memory_kv: tuple[Tensor, Tensor],
        src_mask: Tensor,
        cache: dict[str, Tensor] | None,
    ) -> Tensor:
        h = self.ln_self(x)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:  # incremental decoding: one new position per call
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
            x = x + self.drop(self.self_attn.attend(h, k, v, None, causal=False))
        else:
            x = x + self.drop(self.self_attn.attend(h, k, v, None, causal=True))
        x = x + self.drop(self.cross_attn.attend(self.ln_cross(x), *memory_kv, src_mask, False))
        return x + self.drop(self.ffn(self.ln_ffn(x)))


@dataclass
class Memory:
    """The encoded sources of a batch, with what every decoding step reuses."""

    states: Tensor  # (B, S, d) after the adapter
    src_ids: Tensor  # (B, S)
    attn_mask: Tensor  # (B, 1, 1, S) true where attention may look
    copy_mask: Tensor  # (B, 1, S) true where the copy head may point
    layer_kv: list[tuple[Tensor, Tensor]]
    copy_keys: Tensor  # (B, S, d)

    def select(self, index: Tensor) -> Memory:
        """Rows `index` of the batch (beam search expands and reorders them)."""
        return Memory(
            self.states[index],
            self.src_ids[index],
            self.attn_mask[index],
            self.copy_mask[index],
            [(k[index], v[index]) for k, v in self.layer_kv],
            self.copy_keys[index],
        )


class Summarizer(nn.Module):
    """Decoder and heads; the frozen encoder is passed in, not owned as trained state."""

    # Buffers, registered in __init__.
    embed: Tensor
    never: Tensor

    def __init__(self, cfg: ModelConfig, word_embeddings: Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        # Frozen MiniLM rows: the input embedding, the tied output layer and EMO's cost.
        self.register_buffer("embed", word_embeddings.detach().clone().float(), persistent=False)
        width = word_embeddings.shape[1]
        self.embed_in = nn.Linear(width, d) if width != d else nn.Identity()
        self.positions = nn.Embedding(cfg.max_target_tokens + 1, d)
        self.task = nn.Embedding(len(TASKS), d)
        self.ln_in = nn.LayerNorm(d)
        self.adapter = nn.Sequential(
            nn.LayerNorm(cfg.encoder_width), nn.Linear(cfg.encoder_width, d)
        )
        # The encoder's last layer is tuned for pooled sentence embeddings and blurs which
        # word piece sits where; adding each source token's own embedding lets attention
        # and the copy head find words by identity.
        self.src_tokens = nn.Sequential(nn.Linear(width, d), nn.LayerNorm(d))
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        self.ln_out = nn.LayerNorm(d)
        # BERT's LM-head shape: transform, then the tied (frozen) embedding and a free bias.
        self.transform = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.LayerNorm(width))
        self.out_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        never = torch.zeros(cfg.vocab_size)
        never[cfg.never_ids] = float("-inf")
        self.register_buffer("never", never, persistent=False)
        self.copy_query = nn.Linear(d, d)
        self.copy_key = nn.Linear(d, d)
        self.gate = nn.Linear(2 * d + 1, 1)
        # Copying a phrase: a bonus for the source position right after one holding the
        # token just emitted, so a copied span continues (a small decoder learns this from
        # two thousand TL;DRs too slowly on its own). Starts positive, then is learned.
        self.continue_bonus = nn.Parameter(torch.tensor(2.0))
        self.drop = nn.Dropout(cfg.dropout)

    # -- encoder side -------------------------------------------------------------------

    def memory(self, encoded: Tensor, src_ids: Tensor, src_mask: Tensor) -> Memory:
        states = self.adapter(encoded.to(self.out_bias.dtype)) + self.src_tokens(
            self.embed[src_ids]
        )
        attn_mask = src_mask[:, None, None, :].bool()
        copy_ok = src_mask.bool()
        for i in self.cfg.no_copy_ids:
            copy_ok &= src_ids != i
        return Memory(
            states,
            src_ids,
            attn_mask,
            copy_ok[:, None, :],
            [cast(DecoderLayer, layer).cross_attn.keys_values(states) for layer in self.layers],
            self.copy_key(states),
        )

    # -- decoder side -------------------------------------------------------------------

    def _embed(self, tokens: Tensor, task: Tensor, start: int) -> Tensor:
        pos = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        pos = pos.clamp_max(self.cfg.max_target_tokens)
        x = self.embed_in(self.embed[tokens]) + self.positions(pos)[None] + self.task(task)[:, None]
        return self.drop(self.ln_in(x))

    def probs(
        self,
        tokens: Tensor,
        task: Tensor,
        mem: Memory,
        cache: Cache | None = None,
        start: int = 0,
    ) -> Tensor:
        """q(next token) for every position of `tokens` (B, T) → (B, T, V), in fp32.
        Probabilities, not logs: the losses need q itself (EMO) and q at the target (CE),
        and a full-vocabulary log per position is the costliest op left in a step."""
        x = self._embed(tokens, task, start)
        for i, layer in enumerate(self.layers):
            x = layer(x, mem.layer_kv[i], mem.attn_mask, None if cache is None else cache[i])
        h = self.ln_out(x)
        logits = self.transform(h) @ self.embed.to(h.dtype).T + self.out_bias.to(h.dtype)
        vocab = F.softmax(logits.float() + self.never, dim=-1)
        if not self.cfg.copy:
            return vocab
        scores = self.copy_query(h) @ mem.copy_keys.transpose(1, 2) / math.sqrt(h.shape[-1])
        # follows[b, t, j]: source token j-1 is the token fed at step t (the last output).
        prev_src = F.pad(mem.src_ids[:, :-1], (1, 0), value=-1)
        follows = (prev_src[:, None, :] == tokens[:, :, None]).float()
        scores = scores.float() + self.continue_bonus * follows
        scores = scores.masked_fill(~mem.copy_mask, float("-inf"))
        attn = torch.nan_to_num(F.softmax(scores, dim=-1))  # a source with nothing to copy
        context = attn.to(h.dtype) @ mem.states
        gate_in = torch.cat([h, context, follows.amax(-1, keepdim=True).to(h.dtype)], -1)
        p_gen = torch.sigmoid(self.gate(gate_in).float())
        index = mem.src_ids[:, None, :].expand(-1, attn.shape[1], -1)
        return (vocab * p_gen).scatter_add(-1, index, attn * (1 - p_gen))

    def new_cache(self) -> Cache:
        return [{} for _ in self.layers]
