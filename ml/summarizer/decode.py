"""Batched greedy and beam search over the decoder, with a key/value cache.

Each step feeds one new token per hypothesis; self-attention keys and values of earlier
positions stay in the cache and cross-attention keys are computed once per batch (in
`Summarizer.memory`), so a step costs one position, not the whole prefix. Both searches
block repeated n-grams (a small decoder otherwise loops) and are deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ml.summarizer.model import Memory, Summarizer

NEG = float("-inf")


def _banned(history: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in `history`."""
    if n <= 0 or len(history) < n - 1:
        return []
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return [
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if tuple(history[i : i + n - 1]) == prefix
    ]


def _constrain(
    lp: Tensor, histories: list[list[int]], step: int, sep: int, min_len: int, no_repeat: int
) -> Tensor:
    if step < min_len:
        lp[:, sep] = NEG
    for row, h in enumerate(histories):
        banned = _banned(h, no_repeat)
        if banned:
            lp[row, banned] = NEG
    return lp


@torch.inference_mode()
def greedy(
    model: Summarizer,
    mem: Memory,
    task: Tensor,
    max_len: int,
    min_len: int = 4,
    no_repeat: int = 3,
) -> list[list[int]]:
    cfg = model.cfg
    batch = mem.src_ids.shape[0]
    cache = model.new_cache()
    tokens = torch.full((batch, 1), cfg.cls_id, dtype=torch.long, device=mem.src_ids.device)
    out: list[list[int]] = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    for step in range(max_len):
        lp = torch.log(model.probs(tokens, task, mem, cache, start=step)[:, -1].clamp_min(1e-12))
        lp = _constrain(lp, out, step, cfg.sep_id, min_len, no_repeat)
        nxt = lp.argmax(-1)
        for row in (~done).nonzero().flatten().tolist():
            out[row].append(int(nxt[row]))
        done |= nxt == cfg.sep_id
        if bool(done.all()):
            break
        tokens = nxt[:, None]
    return [[t for t in h if t != cfg.sep_id] for h in out]


@torch.inference_mode()
def beam_search(
    model: Summarizer,
    mem: Memory,
    task: Tensor,
    max_len: int,
    beams: int = 4,
    length_penalty: float = 1.0,
    min_len: int = 4,
    no_repeat: int = 3,
) -> list[list[int]]:
    cfg = model.cfg
    batch = mem.src_ids.shape[0]
    device = mem.src_ids.device
    rows = torch.arange(batch, device=device).repeat_interleave(beams)
    mem, task = mem.select(rows), task[rows]
    cache = model.new_cache()
    tokens = torch.full((batch * beams, 1), cfg.cls_id, dtype=torch.long, device=device)
    # Only the first beam of each input is live at the start (the others are copies).
    scores = torch.full((batch, beams), NEG, device=device)
    scores[:, 0] = 0.0
    histories: list[list[int]] = [[] for _ in range(batch * beams)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    for step in range(max_len):
        lp = torch.log(model.probs(tokens, task, mem, cache, start=step)[:, -1].clamp_min(1e-12))
        lp = _constrain(lp, histories, step, cfg.sep_id, min_len, no_repeat)
        vocab = lp.shape[-1]
        cand = (scores[:, :, None] + lp.view(batch, beams, vocab)).view(batch, -1)
        top_scores, top_idx = cand.topk(2 * beams, dim=-1)
        new_scores = torch.full((batch, beams), NEG, device=device)
        new_src = torch.zeros((batch, beams), dtype=torch.long, device=device)
        new_tok = torch.full((batch, beams), cfg.pad_id, dtype=torch.long, device=device)
        for b in range(batch):
            if len(finished[b]) >= beams:
                continue  # this input is done; its rows decode padding until the batch ends
            kept = 0
            for score, idx in zip(top_scores[b].tolist(), top_idx[b].tolist(), strict=True):
                if score == NEG:
                    break
                beam, tok = divmod(idx, vocab)
                src = b * beams + beam
                if tok == cfg.sep_id:
                    length = len(histories[src]) + 1
                    finished[b].append((score / length**length_penalty, histories[src]))
                    if len(finished[b]) >= beams:
                        break
                    continue
                new_scores[b, kept], new_src[b, kept], new_tok[b, kept] = score, src, tok
                kept += 1
                if kept == beams:
                    break
        if all(len(f) >= beams for f in finished):
            break
        order = new_src.flatten()
        histories = [
            [*histories[src], int(tok)]
            for src, tok in zip(order.tolist(), new_tok.flatten().tolist(), strict=True)
        ]
        for layer in cache:
            for key in layer:
                layer[key] = layer[key].index_select(0, order)
        scores, tokens = new_scores, new_tok.view(-1, 1)
    results = []
    for b in range(batch):
        pool = finished[b] or [
            (
                scores[b, k].item() / max(1, len(histories[b * beams + k])) ** length_penalty,
                histories[b * beams + k],
            )
            for k in range(beams)
        ]
        results.append(max(pool, key=lambda sh: sh[0])[1])
    return results
