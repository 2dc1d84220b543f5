"""Does the clone write like its owner? Style figures over lists of replies.

Each function compares replies the clone generated for held-out conversations with the
owner's real replies to the same conversations (``training.style_eval`` produces both).
They are pure and cheap, so the definitions below are the whole story:

* ``length_distance``: the Wasserstein-1 (earth mover's) distance between the character
  lengths of the generated and the real replies, divided by the real replies' mean length.
  0 means the same length distribution; 0.5 means lengths are off by half an average owner
  reply (too long, too short, or too uniform, all count).
* ``emoji_rate_distance``: the absolute difference between the share of generated replies
  with at least one emoji and the same share of the real replies (``training.report``'s
  ``has_emoji``, the figure the dataset report shows). 0.1 is ten percentage points.
* ``assistant_share``: the share of generated replies matching one of
  ``ASSISTANT_PATTERNS`` ("As an AI", "I'm Qwen", "Как ИИ", "Конечно! Вот", ...), i.e. that
  sound like the base instruct model rather than the owner. It should be 0.
* ``distinct_2``: unique word bigrams / all word bigrams, pooled over the replies (bigrams
  never cross two replies). 1.0 means no word pair repeats; a clone stuck on one phrase
  drifts towards 0. It falls as replies pile up, so compare it with the owner's own figure
  on the same number of replies (``style_distinct_2_owner``).
* ``memory_overlap``: among the replies whose prompt had a memory block
  (``training.memory``), the share that has a content word in common with one of its lines
  (``training.words.share_content_word``): whether the clone uses what it is shown. The
  owner's own replies to the same prompts give the reference (``style_memory_overlap_owner``);
  absent when no prompt had a block.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise

from training.report import has_emoji
from training.words import share_content_word

_APOSTROPHE = "['’]"
ASSISTANT_PATTERNS: tuple[str, ...] = (
    # English: the instruct model introducing itself or offering help.
    r"\bas an ai\b",
    r"\bas an artificial intelligence\b",
    r"\bas an? (?:large )?language model\b",
    rf"\bi(?:{_APOSTROPHE}m| am) an? (?:large )?language model\b",
    rf"\bi(?:{_APOSTROPHE}m| am) qwen\b",
    rf"\bi(?:{_APOSTROPHE}m| am) an? (?:ai|virtual)?\s*assistant\b",
    rf"\bi(?:{_APOSTROPHE}m| am) an ai\b",
    r"\bcreated by alibaba\b",
    r"\bcertainly! here\b",
    r"\bhow can i (?:assist|help) you\b",
    # Russian: the same phrases as the model says them in Russian.
    r"\bкак ии\b",
    r"\bкак искусственный интеллект\b",
    r"\bкак (?:большая )?языковая модель\b",
    r"\bя\s*(?:—|-)?\s*(?:большая )?языковая модель\b",
    r"\bя qwen\b",
    r"\bя\s*(?:—|-)?\s*(?:ии|искусственный интеллект)\b",
    r"\bя (?:ваш |виртуальный |ии-)?(?:ассистент|помощник)\b",
    r"\bконечно! вот\b",
    r"\bчем (?:я )?могу (?:вам )?помочь\b",
)
"""Case-insensitive regexes of phrases a person does not write but an instruct model does.

Kept narrow on purpose: "Конечно, вот" (with a comma), a bare "помочь" or talk *about* a
language model are things the owner may well write, so only the assistant's stock openings
and its descriptions of itself count.
"""

_ASSISTANT = re.compile("|".join(f"(?:{p})" for p in ASSISTANT_PATTERNS), re.IGNORECASE)
_WORD = re.compile(r"\w+")


def reply_length(text: str) -> int:
    """Length of a reply in characters (Unicode code points), surrounding space ignored."""
    return len(text.strip())


def wasserstein_1(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's distance between two empirical distributions (the area between CDFs)."""
    if not a or not b:
        raise ValueError("both distributions need at least one value")
    a_sorted, b_sorted = sorted(a), sorted(b)
    points = sorted(set(a_sorted) | set(b_sorted))
    total = 0.0
    for left, right in pairwise(points):
        cdf_a = bisect_right(a_sorted, left) / len(a_sorted)
        cdf_b = bisect_right(b_sorted, left) / len(b_sorted)
        total += abs(cdf_a - cdf_b) * (right - left)
    return total


def length_distance(generated: Sequence[str], real: Sequence[str]) -> float:
    """Wasserstein-1 distance of reply lengths (characters) over the real mean length."""
    real_lengths = [reply_length(r) for r in real]
    if not real_lengths:
        raise ValueError("no real replies to compare with")
    mean = sum(real_lengths) / len(real_lengths)
    if mean == 0:
        raise ValueError("the real replies are all empty")
    return wasserstein_1([reply_length(g) for g in generated], real_lengths) / mean


def emoji_rate(replies: Sequence[str]) -> float:
    """Share of replies holding at least one emoji."""
    if not replies:
        raise ValueError("no replies to measure")
    return sum(map(has_emoji, replies)) / len(replies)


def emoji_rate_distance(generated: Sequence[str], real: Sequence[str]) -> float:
    """|emoji rate of the generated replies - emoji rate of the real ones|, in [0, 1]."""
    return abs(emoji_rate(generated) - emoji_rate(real))


def sounds_like_assistant(text: str) -> bool:
    """True when the reply matches one of ``ASSISTANT_PATTERNS``."""
    return _ASSISTANT.search(text) is not None


def assistant_share(replies: Sequence[str]) -> float:
    """Share of replies that sound like an assistant, not the owner."""
    if not replies:
        raise ValueError("no replies to measure")
    return sum(map(sounds_like_assistant, replies)) / len(replies)


def words(text: str) -> list[str]:
    """Lower-cased words (runs of letters, digits, _); punctuation and emoji are not words."""
    return _WORD.findall(text.casefold())


def distinct_2(replies: Sequence[str]) -> float:
    """Unique word bigrams / all word bigrams over the replies; 1.0 when there are none."""
    bigrams = [
        pair for reply in replies for pair in zip(words(reply), words(reply)[1:], strict=False)
    ]
    if not bigrams:
        return 1.0  # nothing to repeat: one-word replies are judged by the other figures
    return len(set(bigrams)) / len(bigrams)


def memory_overlap(replies: Sequence[str], snippets: Sequence[Sequence[str]]) -> float | None:
    """Share of the replies with a memory block that share a content word with it (None:
    no reply had a block)."""
    pairs = [(reply, lines) for reply, lines in zip(replies, snippets, strict=True) if lines]
    if not pairs:
        return None
    return sum(share_content_word(reply, list(lines)) for reply, lines in pairs) / len(pairs)


def style_scores(
    generated: Sequence[str],
    real: Sequence[str],
    snippets: Sequence[Sequence[str]] | None = None,
) -> dict[str, float]:
    """Every style figure, keyed as stored with a run's metrics (``style_*``).

    ``snippets``: the memory block lines of each reply's prompt (the same order).
    """
    if not generated or not real:
        raise ValueError("style checks need at least one generated and one real reply")
    scores = {
        "style_length_distance": length_distance(generated, real),
        "style_emoji_rate_distance": emoji_rate_distance(generated, real),
        "style_assistant_share": assistant_share(generated),
        "style_distinct_2": distinct_2(generated),
        "style_distinct_2_owner": distinct_2(real),
        "style_samples": float(len(generated)),
    }
    overlap = memory_overlap(generated, snippets) if snippets is not None else None
    if overlap is not None and snippets is not None:
        scores["style_memory_overlap"] = overlap
        scores["style_memory_overlap_owner"] = memory_overlap(real, snippets) or 0.0
    return scores
