"""Benchmark: how long chats wait for the clone's reply while a big export is imported.

    .venv/bin/python benchmarks/chat_during_import.py [--messages 1000000] [--users 50]

The real application runs in a child process against the fake Bot API of ``tests/``, with the
scripted engine (a fixed ``--delay-ms`` before each reply). ``--users`` allowed users each
send a message, wait for the reply's first piece (a draft or a message reaching the fake's
socket), pause ``--pause-ms`` and send the next, in two runs of the same length:

* **import**: the bot imports a synthetic ``--messages`` export (``synthetic_export.py``)
  into its database meanwhile, as ``storage.importer.import_export`` does for an upload (the
  same transaction, on the bot's event loop and database), and the run lasts as long as the
  import;
* **idle**: a fresh bot and database, nothing else to do, for as long as the import took.

Printed: the reply time's p50 and p99 (from the push of a message to the first piece of its
reply, the engine's delay included) of both runs, their ratio and PASS/FAIL for the target:
p99 during the import at most twice the idle p99. ``benchmarks/import_export.py`` runs it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic_export import OWNER_ID, write_export  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.bot.conftest import running_clone  # noqa: E402
from tests.bot.scripted_engine import ScriptedEngine  # noqa: E402
from tests.fake_telegram import builders  # noqa: E402
from tests.fake_telegram.server import FakeTelegramServer  # noqa: E402

TARGET_RATIO = 2.0
FIRST_USER_ID = 50_000
REPLY_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.005


@dataclass
class ChatRun:
    """Reply times of one run, in ms."""

    name: str
    seconds: float = 0.0
    replies_ms: list[float] = field(default_factory=list)
    imported: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.replies_ms)
        if not ordered:
            return math.nan
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[rank]

    def row(self) -> str:
        return (
            f"{self.name:<8} {len(self.replies_ms):8d} {self.percentile(50):9.0f} "
            f"{self.percentile(99):9.0f} {max(self.replies_ms, default=math.nan):9.0f}"
        )


def _settings(url: str, token: str, data_dir: Path, users: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_bot_token=token,
        owner_id=OWNER_ID,
        allowed_user_ids=frozenset(FIRST_USER_ID + i for i in range(users)),
        data_dir=data_dir,
        telegram_api_base_url=f"{url}/bot",
        telegram_file_base_url=f"{url}/file/bot",
        reply_quiet_seconds=0,
        telegram_rate_limit=0,
    )


async def serve_bot(
    url: str, token: str, data_dir: Path, users: int, delay: float, export: Path | None
) -> None:
    """The child: the bot; prints ``ready``; on a line on stdin imports ``export`` (if any),
    printing ``importing`` and then the import's JSON figures; stops at end of input."""
    from storage.importer import import_export

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    settings = _settings(url, token, data_dir, users)
    async with running_clone(settings, lambda _: ScriptedEngine(delay=delay)) as app:
        print("ready", flush=True)
        await reader.readline()
        if export is not None:
            print("importing", flush=True)
            started = time.monotonic()
            report = await import_export(app.bot_data["services"].db, export, owner_id=OWNER_ID)
            figures = {"messages": report.messages, "seconds": time.monotonic() - started}
            print(json.dumps(figures), flush=True)
        await reader.readline()


class Chats:
    """The users' chats: each sends a message, waits for the whole reply, pauses, again.

    One watcher looks at the fake's message counts every tick and wakes the chats whose reply
    came (cheap); the reply times are read from the fake's arrival clock after the run.
    """

    def __init__(self, server: FakeTelegramServer, users: int, pause: float) -> None:
        self._server = server
        self._users = [builders.user(FIRST_USER_ID + i, f"User{i}") for i in range(users)]
        self._pause = pause
        self._wanted: dict[int, int] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self.pushed: list[tuple[int, float]] = []
        """(chat id, when) of every message sent, on the fake's clock (this process's)."""

    async def run_until(self, stop: asyncio.Event) -> None:
        watching = asyncio.ensure_future(self._watch(stop))
        await asyncio.gather(*(self._chat(user, stop) for user in self._users))
        await watching

    def reply_times_ms(self) -> list[float]:
        """From each push to the first draft or message of its chat that reached the fake
        after it."""
        arrivals: dict[int, list[float]] = {}
        for at, _, params in self._server.timed_calls("sendMessageDraft", "sendMessage"):
            arrivals.setdefault(int(params["chat_id"]), []).append(at)
        times = []
        for chat_id, pushed in self.pushed:
            after = [at for at in arrivals.get(chat_id, []) if at >= pushed]
            times.append((min(after) - pushed) * 1000 if after else math.inf)
        return times

    async def _watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or any(not e.is_set() for e in self._arrived.values()):
            counts = self._server.message_counts()
            for chat_id, event in self._arrived.items():
                if counts.get(chat_id, 0) >= self._wanted[chat_id]:
                    event.set()
            await asyncio.sleep(POLL_SECONDS)

    async def _chat(self, user: dict[str, object], stop: asyncio.Event) -> None:
        chat_id = int(str(user["id"]))
        k = 0
        while not stop.is_set():
            k += 1
            self._wanted[chat_id] = k  # the scripted reply of one line is one message
            self._arrived[chat_id] = event = asyncio.Event()
            self.pushed.append((chat_id, time.monotonic()))
            self._server.send_text(user, f"message {k} from {chat_id}")
            await asyncio.wait_for(event.wait(), REPLY_TIMEOUT_SECONDS)
            await asyncio.sleep(self._pause)


async def _read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        raise RuntimeError("the bot process ended early; run it alone to see why")
    return line.decode().strip()


async def run_chats(
    name: str,
    *,
    users: int,
    delay: float,
    pause: float,
    export: Path | None,
    seconds: float | None,
) -> ChatRun:
    """One run: a fresh fake server, database and bot process; chats until the import ends
    (``export``) or for ``seconds``."""
    run = ChatRun(name)
    with FakeTelegramServer(keep_alive=True) as server, tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--child", server.url, server.token, tmp]
        command += ["--users", str(users), "--delay-ms", str(delay * 1000)]
        if export is not None:
            command += ["--export", str(export)]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert process.stdin is not None
        try:
            assert await _read_line(process) == "ready"
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            if export is not None:
                assert await _read_line(process) == "importing"
            stop = asyncio.Event()
            chats = Chats(server, users, pause)
            started = time.monotonic()
            chatting = asyncio.ensure_future(chats.run_until(stop))
            if export is not None:
                figures = json.loads(await _read_line(process))
                run.imported = int(figures["messages"])
            else:
                await asyncio.sleep(seconds or 0.0)
            run.seconds = time.monotonic() - started
            stop.set()
            await chatting
            run.replies_ms = chats.reply_times_ms()
            process.stdin.write(b"stop\n")
            await process.stdin.drain()
            await asyncio.wait_for(process.wait(), timeout=60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return run


async def measure(export: Path, *, users: int, delay: float, pause: float) -> bool:
    """Both runs, the import's first; prints the table and the verdict; True on PASS."""
    during = await run_chats(
        "import", users=users, delay=delay, pause=pause, export=export, seconds=None
    )
    idle = await run_chats(
        "idle", users=users, delay=delay, pause=pause, export=None, seconds=during.seconds
    )
    print(
        f"\nChat replies during an import of {during.imported:,} messages "
        f"({during.seconds:.1f} s), {users} users, engine delay {delay * 1000:.0f} ms:"
    )
    print(f"{'run':<8} {'replies':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print(during.row())
    print(idle.row())
    ratio = during.percentile(99) / idle.percentile(99)
    passed = ratio <= TARGET_RATIO
    print(
        f"p99 during the import / idle p99: {ratio:.2f} (target <= {TARGET_RATIO:.0f}): "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--pause-ms", type=float, default=500.0)
    parser.add_argument("--export", type=Path, help="an export to import (else one is written)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "TOKEN", "DATA_DIR"))
    args = parser.parse_args()
    if args.child:
        url, token, data_dir = args.child
        coroutine = serve_bot(
            url, token, Path(data_dir), args.users, args.delay_ms / 1000, args.export
        )
        asyncio.run(coroutine)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        export = args.export
        if export is None:
            export = Path(tmp) / "result.json"
            print(f"writing a synthetic export of {args.messages:,} messages…", flush=True)
            write_export(export, args.messages)
        passed = asyncio.run(
            measure(
                export, users=args.users, delay=args.delay_ms / 1000, pause=args.pause_ms / 1000
            )
        )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
