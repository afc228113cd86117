"""app.artifacts.faqs: the questions, the prompt template, the messages, the cache key, the
text blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.artifacts.faqs import (
    BUILTIN_TEMPLATE,
    LANGS,
    QUESTIONS,
    Block,
    FaqKey,
    PaperText,
    PromptError,
    UnknownLanguage,
    blocks,
    load_prompt,
    paper_block,
    parse_lang,
    parse_template,
    render_messages,
    spans,
)

PAPER = PaperText(
    arxiv_id="2401.00001",
    version=2,
    title="Tokenizers  for\n {braces} and $x^2$",
    abstract="We study {title} and 50% of {questions}.",
    authors=("Ada Lovelace", "Alan Turing"),
)


def test_six_questions_in_each_language() -> None:
    assert LANGS == ("en", "zh")
    for lang in LANGS:
        assert len(QUESTIONS[lang]) == 6
    assert QUESTIONS["zh"][0] == "这篇论文试图解决什么问题？"


@pytest.mark.parametrize(
    ("raw", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("en", "en"),
        ("EN-us", "en"),
        ("zh", "zh"),
        ("zh_CN", "zh"),
        ("zh-Hans", "zh"),
        (" cn ", "zh"),
    ],
)
def test_parse_lang(raw: str | None, lang: str) -> None:
    assert parse_lang(raw) == lang


@pytest.mark.parametrize("raw", ["fr", "zh-tw-x", "e", "<script>", "x" * 500])
def test_unknown_language(raw: str) -> None:
    with pytest.raises(UnknownLanguage) as info:
        parse_lang(raw)
    assert "use en or zh" in str(info.value) and len(str(info.value)) < 80


def test_builtin_prompt_has_both_messages() -> None:
    prompt = load_prompt(None)
    assert prompt.source == "built-in"
    assert prompt.system and "{language}" in prompt.system
    assert "{questions}" in prompt.user and "{paper}" in prompt.user
    assert prompt.digest == parse_template(BUILTIN_TEMPLATE).digest
    assert len(prompt.digest) == 16


@pytest.mark.parametrize("lang", LANGS)
def test_messages_for_a_paper(lang: str) -> None:
    messages = render_messages(load_prompt(None), PAPER, lang)  # type: ignore[arg-type]
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    # The paper's text goes in once, verbatim (whitespace collapsed); braces in it are not
    # placeholders and are never expanded.
    assert "Title: Tokenizers for {braces} and $x^2$" in user
    assert "Abstract: We study {title} and 50% of {questions}." in user
    assert "Authors: Ada Lovelace, Alan Turing" in user
    assert "arXiv: 2401.00001v2" in user
    for i, question in enumerate(QUESTIONS[lang], 1):  # type: ignore[index]
        assert f"{i}. {question}" in user
    # No full text here: the model is told it only has the abstract.
    assert "not the full text" in user
    assert ("Simplified Chinese" if lang == "zh" else "English") in messages[0]["content"]


def test_prompt_file_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("Paper {arxiv_id}: {title}\n{questions}\nUnknown {placeholder} kept.")
    prompt = load_prompt(path)
    assert prompt.source == str(path) and prompt.system is None
    messages = render_messages(prompt, PAPER, "en")
    assert messages == [
        {
            "role": "user",
            "content": "Paper 2401.00001: Tokenizers for {braces} and $x^2$\n"
            + "\n".join(f"{i}. {q}" for i, q in enumerate(QUESTIONS["en"], 1))
            + "\nUnknown {placeholder} kept.",
        }
    ]
    assert prompt.digest != load_prompt(None).digest


def test_prompt_file_sections(tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("[system]\nBe brief. Answer in {language}.\n[user]\n{paper}\n", "utf-8")
    messages = render_messages(load_prompt(path), PAPER, "zh")
    assert messages[0] == {
        "role": "system",
        "content": "Be brief. Answer in Simplified Chinese (简体中文).",
    }
    assert messages[1]["content"] == paper_block(PAPER)


@pytest.mark.parametrize("text", ["", "   \n", "[system]\nonly a system message\n"])
def test_prompt_without_user_message_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text(text)
    with pytest.raises(PromptError):
        load_prompt(path)


def test_missing_prompt_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="cannot read"):
        load_prompt(tmp_path / "nope.txt")


def test_key_names_are_stable_and_distinct() -> None:
    key = FaqKey("hep-th/9901001", 2, "en", "qwen2.5:7b-instruct/q4")
    assert key.job_id("papershelf:llm").startswith("papershelf:llm:faq:hep-th/9901001:v2:en:")
    assert key.stream_key("q") == f"q:faq-stream:{key.digest}"
    others = [
        FaqKey("hep-th/9901001", 3, "en", key.model),
        FaqKey("hep-th/9901001", 2, "zh", key.model),
        FaqKey("hep-th/9901001", 2, "en", "another-model"),
        FaqKey("hep-th/9901002", 2, "en", key.model),
    ]
    ids = {k.job_id("q") for k in [key, *others]}
    assert len(ids) == 5
    assert FaqKey("hep-th/9901001", 2, "en", key.model).job_id("q") == key.job_id("q")


def test_blocks_of_a_typical_answer() -> None:
    text = (
        "## 1. What problem?\r\n"
        "It solves **this** and\n"
        "that.\n\n"
        "### Related work ###\n"
        "- first\n"
        "* second, which wraps\n"
        "  onto a second line\n"
        "1. one\n"
        "2) two\n"
        "---\n"
        "<script>alert(1)</script> stays text\n"
    )
    assert blocks(text) == [
        Block("heading", ("1. What problem?",)),
        Block("paragraph", ("It solves **this** and", "that.")),
        Block("heading", ("Related work",)),
        Block("ul", ("first", "second, which wraps onto a second line")),
        Block("ol", ("one", "two")),
        Block("paragraph", ("<script>alert(1)</script> stays text",)),
    ]


def test_spans() -> None:
    assert spans("a **b** c __d__") == [(False, "a "), (True, "b"), (False, " c "), (True, "d")]
    assert spans("no bold") == [(False, "no bold")]
    assert spans("**unclosed") == [(False, "**unclosed")]
