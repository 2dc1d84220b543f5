"""How the training and judging child processes end.

By the time a child exits, everything its parent reads is written: the JSON lines on stdout,
result.json, the adapter, the log. What is left is the interpreter's own teardown of the
modules torch, transformers and PEFT loaded, over a second of freeing objects one by one on
this project's machine (each run starts two such children, the test suite about thirty); the
operating system frees the same memory at once.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_child(status: int) -> NoReturn:
    """Flush the logs and the standard streams, then exit with ``status`` without teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
