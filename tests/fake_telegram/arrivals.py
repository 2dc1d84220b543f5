"""When a request reached the fake server: the kernel's receive timestamp of its bytes.

A handler thread of the threading server reads a request only when it gets the interpreter:
with hundreds of connections sending at once, tens of milliseconds after the bytes arrived
(a raw-socket client's 200 simultaneous requests: p99 about 50 ms). A latency benchmark
that timed the bot by that clock would time the fake. Linux stamps every received TCP
segment (``SO_TIMESTAMPNS``, kernel 4.13+); :class:`ArrivalStampedSocketIO` reads through
``recvmsg`` and keeps the stamp of its latest read. Elsewhere the time of the read stands in.
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import time
from typing import Any

SO_TIMESTAMPNS: int | None = None
if sys.platform == "linux":
    SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # older Pythons lack the name
_TIMESPEC = struct.Struct("@qq")  # struct timespec: seconds, nanoseconds (64-bit Linux)


def stamp_arrivals(sock: socket.socket) -> bool:
    """Ask the kernel to stamp the segments `sock` receives; False where it cannot."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class ArrivalStampedSocketIO(io.RawIOBase):
    """A connected socket's reads, each noting when its bytes reached the socket.

    ``arrived_at`` is ``time.monotonic()``'s reading at that moment, converted from the
    kernel's wall-clock stamp; the time of the read where a segment carries no stamp.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._ancillary_size = socket.CMSG_SPACE(_TIMESPEC.size)
        self.arrived_at: float | None = None

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer: Any) -> int:
        size, ancillary, _, _ = self._sock.recvmsg_into([buffer], self._ancillary_size)
        if size:
            self.arrived_at = _arrival(ancillary)
        return size


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            age = time.time() - (seconds + nanoseconds / 1e9)
            return time.monotonic() - max(age, 0.0)
    return time.monotonic()
