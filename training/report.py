"""What a dataset build holds, for the owner: ``tgclone dataset report``, /stats, a histogram.

``build_report`` measures a ``DatasetBuild``; ``format_report`` renders it for the terminal,
``format_short`` in a few lines for the bot's /stats, and ``save_length_histogram`` draws the
lengths of the owner's real turns beside those of the training targets as a PNG. Coverage
(``training.coverage``) says where every owner turn went: trained on, held out for
evaluation, in context only, or dropped (with the reason). Random samples shown are
scrubbed of private data whatever the build's settings, since a report is made to be looked
at and shared.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.chat_format import TokenCounter
from training.config import DatasetConfig
from training.dataset import DatasetBuild, Sample
from training.privacy import scrub
from training.samples import targets
from training.turns import word_count

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SHORT_RATIOS = (0.0, 0.25, 0.5, 1.0)
"""``keep_short_ratio`` values whose effect on reply lengths the report shows."""


@dataclass(frozen=True)
class DatasetReport:
    """Figures of one dataset build."""

    samples_train: int
    samples_eval: int
    conversations: int
    turns: int
    """User and owner turns of all samples (system messages not counted)."""
    owner_replies: int
    tokens_total: int
    tokens_max: int
    tokens_exact: bool
    """True when counted with the real tokenizer, False for the chars-per-token estimate."""
    reply_words: tuple[int, int, int]
    """p10, p50, p90 of owner-reply length in words."""
    reply_chars: tuple[int, int, int]
    """p10, p50, p90 of owner-reply length in characters."""
    emoji_rate: float
    """Share of owner replies with at least one emoji."""
    drops: dict[str, int]
    top_chats: list[tuple[int, str | None, int]]
    """(chat id, title or None, owner replies kept), most first."""
    random_samples: list[Sample]
    keep_short_ratio: float
    short_ratio_effect: dict[float, tuple[int, int, int]]
    """p10/p50/p90 reply words if ``keep_short_ratio`` were each of ``SHORT_RATIOS``."""
    fingerprint: str
    kept_reply_words: list[int] = field(default_factory=list)
    dropped_reply_words: dict[str, list[int]] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)
    """``Coverage.to_dict()``: trained, held_out, context, dropped (by reason), in_samples."""
    owner_words: tuple[int, int, int] = (0, 0, 0)
    """p10, p50, p90 of the owner's real turns (all of them, merged bursts) in words."""
    owner_turn_words: list[int] = field(default_factory=list)
    memory_samples: int = 0
    """Samples whose system message holds a memory block."""


def _percentiles(values: list[int]) -> tuple[int, int, int]:
    if not values:
        return (0, 0, 0)
    ordered = sorted(values)
    last = len(ordered) - 1
    return tuple(ordered[round(q * last)] for q in (0.1, 0.5, 0.9))  # type: ignore[return-value]


def has_emoji(text: str) -> bool:
    """True when the text holds an emoji (a pictographic symbol)."""
    return any(ord(char) >= 0x2600 and unicodedata.category(char) == "So" for char in text)


def _replies(samples: list[Sample]) -> list[str]:
    return [reply for sample in samples for reply in targets(sample)]


def _short_effect(
    kept: list[int], dropped_short: list[int], minimum: int
) -> dict[float, tuple[int, int, int]]:
    """Reply-length percentiles had a given share of the short replies been kept."""
    long_ones = [w for w in kept if w >= minimum]
    short = sorted([w for w in kept if w < minimum] + dropped_short)
    # Spread the share evenly over the short lengths (a deterministic stand-in for sampling).
    effect = {}
    for ratio in SHORT_RATIOS:
        take = round(ratio * len(short))
        step = len(short) / take if take else 0.0
        chosen = [short[int(i * step)] for i in range(take)]
        effect[ratio] = _percentiles(long_ones + chosen)
    return effect


def build_report(
    build: DatasetBuild,
    config: DatasetConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    random_samples: int = 3,
    seed: int = 0,
    chat_titles: dict[int, str] | None = None,
) -> DatasetReport:
    """Measure a build (tokens exactly when a tokenizer is given; see ``TokenCounter``)."""
    samples = build.train + build.eval
    replies = _replies(samples)
    kept_words = [word_count(r) for r in replies]
    counter = TokenCounter(config, tokenizer)
    tokens = [counter.sample(s) for s in samples]
    titles = chat_titles or {}
    top = Counter(build.chat_replies).most_common(5)
    rng = random.Random(seed)
    picked = rng.sample(samples, min(random_samples, len(samples)))
    shown = [[{"role": m["role"], "content": scrub(m["content"])} for m in s] for s in picked]
    return DatasetReport(
        samples_train=len(build.train),
        samples_eval=len(build.eval),
        conversations=build.conversations,
        turns=sum(len(s) - 1 for s in samples),
        owner_replies=len(replies),
        tokens_total=sum(tokens),
        tokens_max=max(tokens, default=0),
        tokens_exact=tokenizer is not None,
        reply_words=_percentiles(kept_words),
        reply_chars=_percentiles([len(r) for r in replies]),
        emoji_rate=sum(map(has_emoji, replies)) / len(replies) if replies else 0.0,
        drops=dict(build.drops),
        top_chats=[(chat, titles.get(chat), count) for chat, count in top],
        random_samples=shown,  # type: ignore[arg-type]
        keep_short_ratio=config.keep_short_ratio,
        short_ratio_effect=_short_effect(
            kept_words, build.dropped_reply_words.get("short_reply", []), config.min_reply_words
        ),
        fingerprint=build.fingerprint,
        kept_reply_words=kept_words,
        dropped_reply_words={k: list(v) for k, v in build.dropped_reply_words.items()},
        coverage=build.coverage.to_dict(),
        owner_words=_percentiles(build.coverage.real_words),
        owner_turn_words=list(build.coverage.real_words),
        memory_samples=build.stats.get("memory_samples", 0),
    )


def _p(values: tuple[int, int, int]) -> str:
    return f"p10 {values[0]} / p50 {values[1]} / p90 {values[2]}"


def coverage_lines(report: DatasetReport) -> list[str]:
    """Where the owner's turns went, and their real lengths beside the targets'."""
    coverage = report.coverage
    if not coverage:
        return []
    dropped: dict[str, int] = coverage["dropped"]
    total = coverage["trained"] + coverage["held_out"] + coverage["context"]
    total += sum(dropped.values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in _top(dropped, len(dropped)))
    return [
        f"Your turns: {total}; trained on {coverage['trained']}, held out for evaluation "
        f"{coverage['held_out']}, context only {coverage['context']}, dropped "
        f"{sum(dropped.values())}" + (f" ({reasons})" if reasons else ""),
        f"In some sample: {coverage['in_samples']:.0%} of your turns",
        f"Words, your real turns: {_p(report.owner_words)}",
        f"Words, training targets: {_p(report.reply_words)}",
    ]


def format_report(report: DatasetReport) -> str:
    """The full report as lines of text (for ``tgclone dataset report``)."""
    how = "tokenizer" if report.tokens_exact else "estimate"
    lines = [
        f"Samples: {report.samples_train} train / {report.samples_eval} eval "
        f"from {report.conversations} conversations",
        f"Turns: {report.turns} ({report.owner_replies} owner replies trained on or held out)",
        f"Tokens ({how}): {report.tokens_total} total, longest sample {report.tokens_max}",
        *coverage_lines(report),
        f"Owner reply chars (targets): {_p(report.reply_chars)}",
        f"Replies with emoji: {report.emoji_rate:.1%}",
        f"Samples with a memory block: {report.memory_samples}",
        "Not trained on, by rule:",
    ]
    lines += [f"  {reason}: {count}" for reason, count in sorted(report.drops.items())] or [
        "  nothing"
    ]
    lines.append(f"keep_short_ratio (now {report.keep_short_ratio:g}) -> reply words:")
    lines += [f"  {ratio:g}: {_p(p)}" for ratio, p in report.short_ratio_effect.items()]
    lines.append("Top chats (owner replies):")
    for chat_id, title, count in report.top_chats:
        lines.append(f"  {title or chat_id}: {count}" + (f" ({chat_id})" if title else ""))
    for number, sample in enumerate(report.random_samples, start=1):
        lines.append(f"Random sample {number}:")
        for message in sample[1:]:
            text = message["content"].replace("\n", " / ")
            lines.append(f"  {message['role']}: {text[:200]}")
    lines.append(f"Fingerprint: {report.fingerprint[:16]}")
    return "\n".join(lines)


def format_short(report: DatasetReport) -> str:
    """A few lines for the bot's /stats."""
    dropped = sum(report.drops.values())
    top = ", ".join(f"{reason} {count}" for reason, count in _top(report.drops, 3))
    return "\n".join(
        [
            f"Training samples: {report.samples_train} train / {report.samples_eval} eval "
            f"from {report.conversations} conversations",
            *_short_coverage(report),
            f"Tokens: {report.tokens_total}; replies with emoji {report.emoji_rate:.0%}",
            f"Not trained on: {dropped}" + (f" (most: {top})" if top else ""),
        ]
    )


def _short_coverage(report: DatasetReport) -> list[str]:
    coverage = report.coverage
    if not coverage:
        return [f"Owner replies: {report.owner_replies}, words {_p(report.reply_words)}"]
    dropped = sum(coverage["dropped"].values())
    real, target = report.owner_words, report.reply_words
    return [
        f"Your turns: trained {coverage['trained']}, held out {coverage['held_out']}, "
        f"context {coverage['context']}, dropped {dropped} "
        f"({coverage['in_samples']:.0%} in samples)",
        f"Words p10/p50/p90: yours {real[0]}/{real[1]}/{real[2]}, "
        f"targets {target[0]}/{target[1]}/{target[2]}",
    ]


def _top(counts: dict[str, int], n: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def save_length_histogram(build_or_report: DatasetBuild | DatasetReport, path: Path) -> Path:
    """Write a PNG of the owner's real turn lengths beside the training targets'; return it.

    Both are drawn as shares of their own totals, so the shapes compare directly.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    if isinstance(build_or_report, DatasetReport):
        targets_words = build_or_report.kept_reply_words
        real = build_or_report.owner_turn_words
    else:
        samples = build_or_report.train + build_or_report.eval
        targets_words = [word_count(r) for r in _replies(samples)]
        real = build_or_report.coverage.real_words
    cap = 60  # longer turns share the last bin so the common lengths stay readable
    bins = list(range(0, cap + 2))
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for values, label, color in (
            (real, f"your real turns ({len(real)})", "#d8573b"),
            (targets_words, f"training targets ({len(targets_words)})", "#3b7dd8"),
        ):
            if values:
                weights = [1 / len(values)] * len(values)
                axes.hist(
                    [min(w, cap) for w in values],
                    bins=bins,
                    weights=weights,
                    histtype="step",
                    linewidth=1.8,
                    label=label,
                    color=color,
                )
        axes.set_xlabel(f"turn length, words ({cap}+ in the last bin)")
        axes.set_ylabel("share of turns")
        axes.set_title("Your turns and the training targets")
        axes.legend()
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
