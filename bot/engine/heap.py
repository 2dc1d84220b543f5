"""Long-lived objects kept out of the garbage collector's full passes, which stop the event loop.

CPython's collection of its oldest generation walks every object it tracks, holding the
interpreter. A started bot tracks about 100k objects (the libraries' modules, functions and
classes); with torch, transformers and PEFT loaded, about 470k, and a full pass takes a
quarter of a second. Under load such a pass comes every few seconds: in the 200-chat latency
benchmark each stopped the event loop for 70–80 ms, more than the 50 ms it may lag.
``gc.freeze()`` moves every object tracked now to a permanent generation that collections
skip; what is allocated later is collected as before.

The bot freezes once it has started and after the engine loads a model. Frozen objects that
become garbage in a reference cycle are not collected until unfrozen, so whatever is about
to drop a large object graph (a model unloaded for a training run, an adapter swapped out)
unfreezes first; shutdown unfreezes too.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_long_lived(*, collect: bool = False) -> int:
    """Freeze what the process holds now; ``collect`` first frees its garbage (a full pass:
    after a model load, whose temporaries would otherwise stay frozen). Returns the number
    of frozen objects."""
    if collect:
        gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("%d long-lived objects frozen out of garbage collection", frozen)
    return frozen


def unfreeze() -> None:
    """Give frozen objects back to the collector (the oldest generation)."""
    gc.unfreeze()
