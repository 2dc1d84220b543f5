"""Benchmark: does the memory block find the owner's words that the real reply uses, and fast?

    .venv/bin/python benchmarks/memory_recall.py [--messages 1000000] [--replies 2000]
    .venv/bin/python benchmarks/memory_recall.py --export result.json [--owner-id ID]

Builds a database of a deterministic synthetic corpus (``--messages`` messages, one topic per
conversation: topic words in many inflected forms, a Zipf-distributed everyday vocabulary,
stop-words, the owner's real mix of short and long turns), or imports ``--export``. The most
recent tenth of the conversations is held out, as the eval split is. For each held-out owner
reply (up to ``--replies`` of them, spread evenly):

* retrieved: the memory block's search for that reply, exactly as a training sample or a
  serving prompt makes it (``training.memory.memory_request`` on the turn shaper's
  exchanges, ``storage.memory.recall``), its first ``memory_k`` shaped lines;
* random (the baseline): ``memory_k`` of the owner's messages older than the conversation,
  drawn at random (seeded);

and counts whether any of them shares a content word (``training.words``: stop-words of the
text's script removed, word forms compared by stem) with the real reply. It prints both
rates and their ratio (target: retrieved at least twice the random rate on the synthetic
corpus), and the time of one search as serving runs it (``storage.memory.recall``: a reader
of its own in a worker thread, stem counts remembered as they are asked): p50 and p99
(target on a million messages: p99 at most 5 ms), beside a LIKE scan of the owner's messages
for the same stems on a few replies. Serving's budget (``storage.memory.MAX_MATCHES``) is
compared with larger ones (``--max-matches``): more matches ranked find more, slower.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage.corpus_reader import iter_corpus_rows  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.importer import import_export  # noqa: E402
from storage.memory import MAX_MATCHES, MemoryReader, usable_stems  # noqa: E402
from storage.messages import save_chats, save_messages  # noqa: E402
from storage.models import ChatRecord, MessageRecord  # noqa: E402
from training.config import DatasetConfig  # noqa: E402
from training.memory import memory_request, snippet  # noqa: E402
from training.turns import (  # noqa: E402
    Conversation,
    Line,
    chat_conversations,
    exchange_prompts,
    exchanges,
    shape_line,
)
from training.words import STOP_WORDS, share_content_word  # noqa: E402

OWNER_ID = 11111111
SEED = 17
START = datetime(2020, 1, 1, 8, 0, tzinfo=UTC)
TARGET_RATIO = 2.0
TARGET_P99_MS = 5.0
_SYLLABLES = tuple(c + v for c in "бвгджзклмнпрстфхцчш" for v in "аеиоуыя")
_ENDINGS = ("", "а", "у", "ом", "е", "ы", "ами", "ах", "ой", "ую")
_OWNER_LENGTHS = (1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8, 10, 12, 15, 20, 28, 40)
_STOPS = sorted(STOP_WORDS["cyrillic"])


def _stem(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3))


class Vocabulary:
    """Topic stems (a conversation keeps to one topic) and a Zipf-distributed everyday one."""

    def __init__(self, seed: int, topics: int = 400, per_topic: int = 12, common: int = 8000):
        rng = random.Random(seed)
        self.topics = [[_stem(rng) for _ in range(per_topic)] for _ in range(topics)]
        self.common = [_stem(rng) for _ in range(common)]
        # Zipf from rank 50: the head of the real distribution is function words, which the
        # stop-words stand for here.
        weights = [1 / (rank + 50) for rank in range(common)]
        total = sum(weights)
        running = 0.0
        self._cumulative = []
        for weight in weights:
            running += weight / total
            self._cumulative.append(running)

    def text(self, rng: random.Random, topic: int, words: int) -> str:
        out = []
        for _ in range(words):
            roll = rng.random()
            if roll < 0.35:
                out.append(rng.choice(_STOPS))
                continue
            if roll < 0.6:
                stem = rng.choice(self.topics[topic])
            else:
                index = bisect.bisect_left(self._cumulative, rng.random())
                stem = self.common[min(index, len(self.common) - 1)]
            out.append(stem + rng.choice(_ENDINGS))
        return " ".join(out).capitalize()


def synthetic(messages: int, seed: int = SEED) -> Iterator[MessageRecord]:
    """``messages`` messages of private chats, conversations a few hours apart."""
    rng = random.Random(seed)
    vocabulary = Vocabulary(seed)
    chats = max(4, messages // 20_000)
    clock = {chat: START for chat in range(chats)}
    made = 0
    while made < messages:
        chat = rng.randrange(chats)
        topic = rng.randrange(len(vocabulary.topics))
        moment = clock[chat] + timedelta(hours=rng.randint(2, 48))
        for turn in range(rng.randint(2, 6) * 2):
            if made >= messages:
                break
            owner = turn % 2 == 1
            length = rng.choice(_OWNER_LENGTHS) if owner else rng.randint(2, 14)
            moment += timedelta(seconds=rng.randint(20, 400))
            made += 1
            yield MessageRecord(
                chat_id=10_000 + chat,
                message_id=made,
                sender_id=OWNER_ID if owner else 10_000 + chat,
                sender_name=None,
                is_owner=owner,
                date=moment,
                text=vocabulary.text(rng, topic, length),
            )
        clock[chat] = moment


async def store_synthetic(path: Path, messages: int) -> float:
    """Write the synthetic corpus (indexed as live capture indexes it); return the seconds."""
    db = await Database.open(path)
    started = time.perf_counter()
    async with db.transaction() as conn:
        chats = max(4, messages // 20_000)
        await save_chats(
            conn, [ChatRecord(10_000 + c, None, "personal_chat") for c in range(chats)]
        )
        await save_messages(conn, synthetic(messages))
    await db.close()
    return time.perf_counter() - started


async def store_export(path: Path, export: Path, owner_id: int | None) -> float:
    db = await Database.open(path)
    started = time.perf_counter()
    try:
        await import_export(db, export, owner_id=owner_id)
    finally:
        await db.close()
    return time.perf_counter() - started


class Case:
    """One held-out owner reply and the search for it."""

    def __init__(self, reply: str, stems: tuple[str, ...], before: datetime, limit: int):
        self.reply = reply
        self.stems = stems
        self.before = before
        self.limit = limit


def held_out_cases(
    db_path: Path, config: DatasetConfig, limit: int
) -> tuple[list[Case], list[tuple[datetime, str]]]:
    """The searches of the held-out replies, and every owner message (date, text) in order."""
    owner: list[tuple[datetime, str]] = []
    conversations: list[Conversation] = []
    chat: list[MessageRecord] = []

    def flush() -> None:
        lines = [x for r in chat if isinstance(x := shape_line(r, config), Line)]
        conversations.extend(chat_conversations(lines, config))

    for record in iter_corpus_rows(db_path):
        if chat and record.chat_id != chat[0].chat_id:
            flush()
            chat = []
        chat.append(record)
        if record.is_owner and record.kind == "text" and record.text:
            owner.append((record.date, record.text))
    if chat:
        flush()
    owner.sort()
    conversations.sort(key=lambda c: c.start)
    held = conversations[len(conversations) - max(1, len(conversations) // 10) :]
    cases = []
    for conversation in held:
        items, _ = exchanges(conversation, config)
        prompts = exchange_prompts(items)
        for index, item in enumerate(items):
            request = memory_request(prompts[: index + 1], conversation.start, config)
            if item.prompt is None or request is None or not usable_stems(request.stems):
                continue
            cases.append(Case(item.reply.text, request.stems, request.before, request.limit))
    step = max(1, len(cases) // limit)
    return cases[::step][:limit], owner


async def measure(
    db_path: Path,
    cases: list[Case],
    owner: list[tuple[datetime, str]],
    config: DatasetConfig,
    max_matches: int,
) -> dict[str, float]:
    """Hit rates and search times with a reader of ``max_matches`` (serving's: MAX_MATCHES).

    Each search runs as ``storage.memory.recall`` runs it: ``MemoryReader.recall`` of a fresh
    reader without a snapshot, in a worker thread.
    """
    rng = random.Random(SEED)
    k = config.memory_k
    reader = MemoryReader(db_path, snapshot=False, max_matches=max_matches)
    hits = random_hits = 0
    times = []
    try:
        for case in cases:
            started = time.perf_counter()
            found = await asyncio.to_thread(
                reader.recall, case.stems, before=case.before, limit=case.limit
            )
            times.append(time.perf_counter() - started)
            lines = [line for item in found if (line := snippet(item.text, config))][:k]
            older = owner[: bisect.bisect_left(owner, (case.before, ""))]
            drawn = [text for _, text in rng.sample(older, min(k, len(older)))]
            hits += share_content_word(case.reply, lines)
            random_hits += share_content_word(case.reply, drawn)
    finally:
        reader.close()
    times.sort()
    count = max(1, len(cases))
    return {
        "retrieved": hits / count,
        "random": random_hits / count,
        "p50_ms": statistics.median(times) * 1e3 if times else 0.0,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3 if times else 0.0,
    }


async def like_scan_ms(db_path: Path, cases: list[Case]) -> float:
    """Median time of a LIKE scan of the owner's messages for a case's stems (no index)."""
    db = await Database.open(db_path)
    times = []
    for case in cases:
        stems = usable_stems(case.stems)
        where = " OR ".join("text LIKE ?" for _ in stems)
        sql = f"SELECT text FROM owner_words WHERE ({where}) LIMIT 50"
        started = time.perf_counter()
        async with db.read() as conn:
            await conn.execute_fetchall(sql, [f"%{stem}%" for stem in stems])
        times.append(time.perf_counter() - started)
    await db.close()
    return statistics.median(times) * 1e3 if times else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--replies", type=int, default=2_000)
    parser.add_argument("--export", type=Path, help="measure on this export instead")
    parser.add_argument("--owner-id", type=int, help="the owner of a single-chat export")
    parser.add_argument(
        "--max-matches",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1_000, 3_000],
        help="search budgets to compare with serving's MAX_MATCHES (comma-separated)",
    )
    args = parser.parse_args()
    config = DatasetConfig()
    with tempfile.TemporaryDirectory(prefix="tgclone-memory-") as folder:
        db_path = Path(folder) / "memory.sqlite3"
        if args.export is not None:
            seconds = asyncio.run(store_export(db_path, args.export, args.owner_id))
            source = f"export {args.export.name}"
        else:
            seconds = asyncio.run(store_synthetic(db_path, args.messages))
            source = f"synthetic corpus of {args.messages:,} messages"
        print(f"{source}: stored and indexed in {seconds:.1f} s")
        cases, owner = held_out_cases(db_path, config, args.replies)
        budgets = sorted({MAX_MATCHES, *args.max_matches})
        results = {n: asyncio.run(measure(db_path, cases, owner, config, n)) for n in budgets}
        like = asyncio.run(like_scan_ms(db_path, cases[:20]))
    print(f"held-out owner replies: {len(cases)} (K = {config.memory_k})")
    print(
        f"{'max matches':>12}{'retrieved':>11}{'random':>9}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}"
    )
    for budget, result in results.items():
        ratio = result["retrieved"] / result["random"] if result["random"] else 0.0
        result["ratio"] = ratio
        mark = "  (serving)" if budget == MAX_MATCHES else ""
        print(
            f"{budget:>12,}{result['retrieved']:>11.1%}{result['random']:>9.1%}{ratio:>7.2f}"
            f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}{mark}"
        )
    print(f"baseline, a LIKE scan of the owner's messages for the same stems: {like:.1f} ms")
    if args.export is not None:
        return 0
    serving = results[MAX_MATCHES]
    checks = [
        (
            f"retrieved >= {TARGET_RATIO:g}x random",
            serving["ratio"] >= TARGET_RATIO,
            f"{serving['ratio']:.2f}x",
        ),
    ]
    if args.messages >= 1_000_000:
        checks.append(
            (
                f"p99 <= {TARGET_P99_MS:g} ms",
                serving["p99_ms"] <= TARGET_P99_MS,
                f"{serving['p99_ms']:.2f} ms",
            )
        )
    for name, passed, value in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {value}")
    return 0 if all(passed for _, passed, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
