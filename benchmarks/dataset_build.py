"""Dataset build at scale: 1,000,000 stored messages in ~1,800 chats (every sixth a group).

Generates the corpus deterministically into a fresh SQLite database (through
``storage.db.Database`` and ``storage.messages.save_messages``), then measures, each in its
own process so that peak RSS belongs to one variant only:

* ``stream``: ``storage.corpus_reader.iter_corpus_rows`` feeding ``build_dataset`` chat by
  chat (load and build interleave; their time is told apart by timing the reader alone),
  then ``build_report``;
* ``baseline``: the previous way, ``load_corpus`` (a list of every record) then
  ``build_dataset`` on that list.

Targets: stream load + build under 60 s and under 1 GB peak RSS.

    .venv/bin/python benchmarks/dataset_build.py [--messages 1000000] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.corpus_reader import iter_corpus_rows
from storage.db import Database
from storage.messages import load_corpus, save_chats, save_messages
from tests.training.synthetic_corpus import chat_messages, chats
from training.config import DatasetConfig
from training.dataset import build_dataset
from training.report import build_report, format_short

CHATS = 1_800
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 1024.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def generate(db_path: Path, messages: int) -> int:
    """Fill a fresh database with about ``messages`` messages over ``CHATS`` chats."""
    per_chat = max(1, messages // CHATS // 7)  # a conversation holds about seven messages
    db = await Database.open(db_path)
    stored = 0
    try:
        async with db.transaction() as conn:
            await save_chats(conn, chats(CHATS))
        for start in range(0, CHATS, 100):
            batch = [
                m
                for i in range(start, min(CHATS, start + 100))
                for m in chat_messages(i, per_chat)
            ]
            async with db.transaction() as conn:
                stored += await save_messages(conn, batch)
        await db.checkpoint()
    finally:
        await db.close()
    return stored


def run_stream(db_path: Path) -> dict[str, float]:
    """Time the streaming read alone, then stream + build, then the report."""
    started = time.perf_counter()
    count = sum(1 for _ in iter_corpus_rows(db_path))
    read_s = time.perf_counter() - started
    config = DatasetConfig()
    started = time.perf_counter()
    build = build_dataset(iter_corpus_rows(db_path), config)
    total_s = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(build, config)
    report_s = time.perf_counter() - started
    print(format_short(report), file=sys.stderr)
    return {
        "messages": count,
        "load_s": read_s,
        "build_s": total_s - read_s,
        "load_build_s": total_s,
        "report_s": report_s,
        "samples": len(build.train) + len(build.eval),
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_baseline(db_path: Path) -> dict[str, float]:
    """The previous way: every record in one list, then the build."""

    async def load() -> list[object]:
        db = await Database.open(db_path)
        try:
            return list(await load_corpus(db))
        finally:
            await db.close()

    started = time.perf_counter()
    corpus = asyncio.run(load())
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    build = build_dataset(corpus, DatasetConfig())  # type: ignore[arg-type]
    build_s = time.perf_counter() - started
    return {
        "messages": len(corpus),
        "load_s": load_s,
        "build_s": build_s,
        "load_build_s": load_s + build_s,
        "samples": len(build.train) + len(build.eval),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(variant: str, db_path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--variant", variant, "--db", str(db_path)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--variant", choices=("stream", "baseline"))
    args = parser.parse_args()
    if args.variant:
        run = run_stream if args.variant == "stream" else run_baseline
        print(json.dumps(run(args.db)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db_path = args.db or Path(tmp) / "bench.sqlite3"
        if not db_path.exists():
            started = time.perf_counter()
            stored = asyncio.run(generate(db_path, args.messages))
            print(f"generated {stored:,} messages in {time.perf_counter() - started:.1f} s")
        for variant in ("stream", "baseline"):
            r = _child(variant, db_path)
            line = (
                f"{variant:9s} {int(r['messages']):,} messages: load {r['load_s']:.1f} s, "
                f"build {r['build_s']:.1f} s, load+build {r['load_build_s']:.1f} s"
            )
            if "report_s" in r:
                line += f", report {r['report_s']:.1f} s"
            print(f"{line}, peak RSS {r['peak_rss_mb']:.0f} MB, {int(r['samples']):,} samples")
            if variant == "stream":
                ok = r["load_build_s"] < TARGET_SECONDS and r["peak_rss_mb"] < TARGET_RSS_MB
                verdict = "met" if ok else "MISSED"
                print(f"          target (< {TARGET_SECONDS:.0f} s, < 1 GB): {verdict}")


if __name__ == "__main__":
    main()
