"""build_engine(): the serving engine the settings ask for (ENGINE=transformers|openai)."""

from __future__ import annotations

from bot.engine.base import ReplyEngine
from bot.engine.local import CloneEngine
from bot.engine.openai_server import OpenAIEngine
from bot.settings import Settings


def build_engine(settings: Settings) -> ReplyEngine:
    """The in-process transformers engine, or the client of an OpenAI-compatible server."""
    overrides = settings.generation_overrides()
    if settings.engine == "openai":
        return OpenAIEngine(
            settings.openai_base_url,
            data_dir=settings.data_dir,
            server_data_dir=settings.openai_data_dir,
            api_key=settings.openai_api_key,
            overrides=overrides,
            prompt_format=settings.openai_prompt_format,
            timeout=settings.openai_timeout_seconds,
        )
    return CloneEngine(
        device=settings.engine_device,
        overrides=overrides,
        quantization=settings.engine_quantization,
        queue_size=settings.engine_queue_size,
        max_batch=settings.engine_max_batch,
    )
