"""Benchmark: importing a zip of many small HTML chat pages, ours against the old way, in one run.

    .venv/bin/python benchmarks/html_zip.py [--pages 1000 2000 4000] [--old-up-to 4000]

Writes deterministic zips of one chat's pages (five messages each, see
``tests/html_exports.py``) and imports each with ``storage.importer.import_export`` into a
fresh SQLite database, twice:

* ours: the archive is opened once and its directory read once for all the pages;
* old: each page opens the archive again, reading its whole directory each time (what the
  importer did before; reproduced here by handing the HTML reader a per-page opener), for
  the sizes up to ``--old-up-to`` (the old way takes minutes at 4,000 pages).

Prints the seconds of each import, wall clock and CPU (of this process: the import runs in
its threads), and PASS/FAIL for linearity: the biggest zip may take at most 1.5 times its
share of the smallest one's CPU time (pages / smallest pages). On a machine shared with
other work the CPU seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage import export_html  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.export_archive import ExportSource, open_member  # noqa: E402
from storage.importer import import_export  # noqa: E402
from tests.html_exports import HTML_OWNER_NAME, write_html_zip  # noqa: E402

LINEAR_SLACK = 1.5


class ReopeningFiles:
    """The old way: every page opens the archive again (and reads its directory again)."""

    def __init__(self, path: Path, source: ExportSource) -> None:
        self._path = path
        self._source = source

    def open(self, member: str | None = None) -> AbstractContextManager[IO[bytes]]:
        return open_member(self._path, self._source, member)


@contextmanager
def reopening_export(path: Path, source: ExportSource) -> Iterator[ReopeningFiles]:
    yield ReopeningFiles(path, source)


class Timing(NamedTuple):
    wall: float
    cpu: float
    messages: int


async def timed_import(export: Path, db_path: Path) -> Timing:
    """Import ``export`` into a fresh database: seconds of wall clock and CPU, messages."""
    db = await Database.open(db_path)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        report = await import_export(db, export, owner_name=HTML_OWNER_NAME)
        return Timing(time.perf_counter() - wall, time.process_time() - cpu, report.messages)
    finally:
        await db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[1_000, 2_000, 4_000])
    parser.add_argument("--old-up-to", type=int, default=4_000, help="pages; 0: never")
    args = parser.parse_args()
    sizes = sorted(args.pages)
    ours: dict[int, Timing] = {}
    print(
        f"{'pages':>7}{'messages':>10}{'ours: wall s':>14}{'CPU s':>8}"
        f"{'old: wall s':>13}{'CPU s':>8}{'old / ours (CPU)':>18}"
    )
    with tempfile.TemporaryDirectory(prefix="tgclone-bench-html-") as folder:
        tmp = Path(folder)
        for pages in sizes:
            export = write_html_zip(tmp / f"{pages}.zip", pages)
            ours[pages] = new = asyncio.run(timed_import(export, tmp / f"ours-{pages}.db"))
            line = f"{pages:>7,}{new.messages:>10,}{new.wall:>14.2f}{new.cpu:>8.2f}"
            if pages <= args.old_up_to:
                original = export_html.open_export
                export_html.open_export = reopening_export  # type: ignore[assignment]
                try:
                    old = asyncio.run(timed_import(export, tmp / f"old-{pages}.db"))
                finally:
                    export_html.open_export = original
                line += f"{old.wall:>13.2f}{old.cpu:>8.2f}{old.cpu / new.cpu:>17.1f}x"
            print(line, flush=True)
    smallest, biggest = sizes[0], sizes[-1]
    allowed = ours[smallest].cpu * biggest / smallest * LINEAR_SLACK
    passed = ours[biggest].cpu <= allowed
    print(
        f"{'PASS' if passed else 'FAIL'}  linear in pages: {biggest:,} pages took "
        f"{ours[biggest].cpu:.2f} CPU s, at most {allowed:.2f} allowed"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
