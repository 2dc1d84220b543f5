"""Coverage by default: the owner's short turns stay, and the targets keep the owner's lengths."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from tests.training.chat_builder import Chat, trained
from tests.training.owner_mix import personal_chat
from training.config import DatasetConfig
from training.dataset import build_dataset
from training.report import build_report, format_report, format_short, save_length_histogram
from training.turns import word_count

SEED_RULES = DatasetConfig(match_owner_lengths=False, drop_short_prompt=True)
"""The rules as they were before coverage: every short, filler or emoji turn left out."""


def _median_gap(real: list[int], targets: list[int]) -> float:
    median = statistics.median(real)
    return abs(statistics.median(targets) - median) / median


def test_a_realistic_chat_meets_the_coverage_and_length_targets_by_default() -> None:
    messages = personal_chat()
    build = build_dataset(messages, DatasetConfig())
    coverage = build.coverage
    short_share = sum(1 for w in coverage.real_words if w < 5) / len(coverage.real_words)
    assert 0.5 <= short_share <= 0.7 and statistics.median(coverage.real_words) == 4
    assert coverage.in_samples >= 0.85
    assert _median_gap(coverage.real_words, coverage.target_words) <= 0.25
    # The targets are the ones the samples train on, counted independently of the coverage.
    samples_targets = [word_count(text) for text in trained(build)]
    assert sorted(samples_targets) == sorted(coverage.target_words)
    # The seed's rules, still available, miss both targets on the same chat.
    seed = build_dataset(messages, SEED_RULES).coverage
    assert seed.in_samples < 0.85
    assert _median_gap(seed.real_words, seed.target_words) > 0.25


def test_each_short_length_is_trained_in_the_owners_proportion() -> None:
    build = build_dataset(personal_chat(), DatasetConfig())
    coverage = build.coverage
    real = Counter(coverage.real_words)
    targets = Counter(coverage.target_words)
    long_real = sum(n for w, n in real.items() if w >= 5)
    alpha = sum(n for w, n in targets.items() if w >= 5) / long_real
    for words in range(5):
        assert abs(targets[words] - alpha * real[words]) <= 0.05 * real[words] + 2, words
    assert build.stats["length_match_promoted"] > 0


def test_the_choice_is_deterministic_and_independent_of_reading_order() -> None:
    messages = personal_chat(120)
    build = build_dataset(messages, DatasetConfig())
    assert (
        build_dataset(list(reversed(messages)), DatasetConfig()).fingerprint == build.fingerprint
    )
    reseeded = build_dataset(messages, DatasetConfig(sample_seed=1))
    assert reseeded.fingerprint != build.fingerprint
    assert len(reseeded.coverage.target_words) == len(build.coverage.target_words)


def test_a_repeated_short_reply_is_never_chosen() -> None:
    chat = Chat()
    for index in range(30):
        chat.friend(f"a long question number {index} about the weekend plans?")
        chat.owner(f"I think we could go to the lake on day {index} with everyone")
        chat.friend("ну что?").owner("ок")  # the same exchange every time
    build = build_dataset(chat.messages, DatasetConfig())
    assert trained(build).count("ок") <= 1
    assert build.drops["filler"] >= 29  # counted under its rule, and never promoted


def test_the_report_and_the_histogram_show_coverage(tmp_path: Path) -> None:
    build = build_dataset(personal_chat(150), DatasetConfig())
    report = build_report(build, DatasetConfig())
    coverage = build.coverage
    text = format_report(report)
    assert f"trained on {coverage.trained}" in text
    assert f"context only {coverage.context}" in text
    assert "Words, your real turns: p10" in text and "Words, training targets: p10" in text
    assert f"{coverage.in_samples:.0%} in samples" in format_short(report)
    path = save_length_histogram(report, tmp_path / "lengths.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
