"""Dataset report (full, short, PNG histogram) and the frozen eval set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.training.chat_builder import T0, Chat
from tests.training.synthetic_corpus import iter_corpus, synthetic_corpus
from training.config import DatasetConfig
from training.dataset import build_dataset
from training.frozen_eval import freeze_eval
from training.report import build_report, format_report, format_short, save_length_histogram

CONFIG = DatasetConfig()


def test_report_figures_and_texts() -> None:
    build = build_dataset(synthetic_corpus(340), CONFIG)
    report = build_report(build, CONFIG, random_samples=2, chat_titles={5_000: "Аня"})
    assert report.samples_train == len(build.train) and report.samples_eval == len(build.eval)
    assert report.owner_replies == build.stats["owner_turns"]
    p10, p50, p90 = report.reply_words
    assert p10 <= p50 <= p90 and report.owner_words[0] <= report.owner_words[2]
    coverage = report.coverage
    assert coverage["trained"] + coverage["held_out"] == report.owner_replies
    assert coverage["trained"] + coverage["held_out"] + coverage["context"] + sum(
        coverage["dropped"].values()
    ) == len(build.coverage.real_words)
    assert report.reply_chars[0] <= report.reply_chars[2]
    assert 0 < report.emoji_rate < 0.5 and not report.tokens_exact
    assert report.drops == build.drops and len(report.random_samples) == 2
    # Keeping more short replies can only pull the median down.
    effect = report.short_ratio_effect
    assert effect[0.0][1] >= effect[1.0][1] and effect[1.0][0] < CONFIG.min_reply_words
    text = format_report(report)
    assert "short_reply" in text and "p50" in text and "Top chats" in text
    assert f"context only {coverage['context']}" in text and "Words, your real turns" in text
    short = format_short(report)
    assert 3 <= len(short.splitlines()) <= 5 and "Training samples" in short
    assert build_report(build, CONFIG, random_samples=2) == build_report(
        build, CONFIG, random_samples=2
    )


def test_report_samples_are_scrubbed_and_titles_shown() -> None:
    chat = Chat(chat_id=77).friend("what was that number again?")
    chat.owner("here it is, +7 916 123-45-67, call after six")
    config = DatasetConfig(scrub_private_data=False)
    report = build_report(build_dataset(chat.messages, config), config, chat_titles={77: "Bob"})
    assert "<PHONE>" in report.random_samples[0][-1]["content"]
    assert report.top_chats == [(77, "Bob", 1)]
    assert "Bob: 1 (77)" in format_report(report)


def test_token_counts_use_the_real_tokenizer(qwen_tokenizer: Any) -> None:
    build = build_dataset(list(iter_corpus(6, 4)), CONFIG)
    exact = build_report(build, CONFIG, qwen_tokenizer)
    estimate = build_report(build, CONFIG)
    assert exact.tokens_exact and 0 < exact.tokens_total < estimate.tokens_total


def test_length_histogram_png(tmp_path: Path) -> None:
    build = build_dataset(synthetic_corpus(170), CONFIG)
    for source in (build, build_report(build, CONFIG)):
        path = save_length_histogram(source, tmp_path / "lengths.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _conversations(days: range) -> list[Any]:
    messages = []
    for day in days:
        chat = Chat(chat_id=1 + day % 3, start=T0 + timedelta(days=day))
        chat.friend(f"day {day}: how is it going with you?")
        chat.owner(f"going well on day {day}, thanks for asking")
        messages += chat.messages
    return messages


def test_frozen_eval_is_reused_while_the_corpus_supports_it(tmp_path: Path) -> None:
    store = tmp_path / "eval"
    first = freeze_eval(build_dataset(_conversations(range(20)), CONFIG), store)
    assert first.stats["eval_frozen_reused"] == 0 and len(first.eval) == 2
    grown = build_dataset(_conversations(range(30)), CONFIG)
    assert grown.eval_fingerprint != first.eval_fingerprint  # newer conversations moved in
    frozen = freeze_eval(grown, store)
    assert frozen.stats["eval_frozen_reused"] == 1
    assert frozen.eval == first.eval and frozen.eval_fingerprint == first.eval_fingerprint
    eval_replies = {s[-1]["content"] for s in frozen.eval}
    assert not eval_replies & {s[-1]["content"] for s in frozen.train}
    assert len(frozen.train) == 28  # the newly recent conversations train instead
    # Deleting a frozen conversation's messages (/forget) refreezes: nothing deleted survives.
    forgotten = build_dataset(
        [m for m in _conversations(range(30)) if "day 18" not in m.text], CONFIG
    )
    refrozen = freeze_eval(forgotten, store)
    assert refrozen.stats["eval_frozen_reused"] == 0 and refrozen.eval == forgotten.eval
    assert "day 18" not in (store / "frozen_eval.jsonl").read_text("utf-8")
