"""A fake OpenAI-compatible (vLLM) server for testing ENGINE=openai over real HTTP."""

from tests.fake_openai.server import FakeOpenAIServer

__all__ = ["FakeOpenAIServer"]
