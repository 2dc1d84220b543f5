"""Deployment settings: one typed object from the environment and `.env`, built at the edge."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from training.settings import PipelineSettings

CLOUD_API_BASE_URL = "https://api.telegram.org/bot"
CLOUD_FILE_BASE_URL = "https://api.telegram.org/file/bot"


class Settings(PipelineSettings):
    """Everything a deployment chooses: the training pipeline's settings (``PipelineSettings``:
    the training, dataset and generation knobs, DATA_DIR, the runner, the gate) and the bot's
    (Telegram, access, serving). Read once by the CLI and passed down; precedence: defaults,
    then the environment and ``.env``, then command-line flags."""

    telegram_bot_token: str = Field("", description="Bot token from @BotFather.")
    owner_id: int = Field(0, description="The owner's Telegram user id.")
    allowed_user_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Who may chat with the clone besides the owner (comma-separated)."
    )
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Who may do everything the owner may (comma-separated)."
    )
    allow_all: bool = Field(False, description="Anyone may chat with the clone (not administer).")
    auto_reply: bool = Field(
        False,
        description="Default of /autoreply: answer as the owner in connected Business chats.",
    )
    webhook_url: str = Field(
        "", description="Public https URL Telegram posts updates to; empty = long polling."
    )
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook server binds.")
    webhook_port: int = Field(8443, ge=1, le=65535, description="Port the webhook server binds.")
    webhook_secret_token: str = Field(
        "",
        validate_default=True,
        description="Secret Telegram sends with every webhook call (required with WEBHOOK_URL).",
    )
    health_port: int = Field(
        0, ge=0, le=65535, description="Port of the GET /health liveness endpoint; 0 = off."
    )
    health_listen: str = Field("127.0.0.1", description="Address the liveness endpoint binds.")
    telegram_api_base_url: str = Field(CLOUD_API_BASE_URL)
    telegram_file_base_url: str = Field(CLOUD_FILE_BASE_URL)
    telegram_local_mode: bool = Field(
        False, description="The Bot API server runs with --local (no 20 MB download limit)."
    )
    retrain_cron: str = Field("", description="Crontab line (e.g. '0 4 * * 0'); empty = off.")
    timezone: str = Field(
        "UTC", description="Zone of RETRAIN_CRON and of exports without offsets."
    )
    train_share_gpu: bool = Field(
        False, description="A local run leaves the serving model loaded (room for both)."
    )
    engine: Literal["transformers", "openai"] = Field(
        "transformers",
        description="'transformers': the model in this process; 'openai': an OpenAI-compatible "
        "server such as vLLM (OPENAI_BASE_URL).",
    )
    engine_device: Literal["auto", "cpu", "cuda"] = "auto"
    engine_quantization: Literal["auto", "4bit", "bf16"] = Field(
        "auto",
        description="Base model weights: auto = the adapter's clone.json precision (what it was "
        "trained and judged on) where the device can run it, else 4-bit on CUDA, float32 on CPU.",
    )
    engine_queue_size: int = Field(
        32, ge=1, description="Replies that may wait for the model; more get 'busy, try later'."
    )
    engine_max_batch: int = Field(
        4, ge=1, description="Most replies (of different chats) generated together."
    )
    openai_base_url: str = Field(
        "", description="ENGINE=openai: the server's API root, e.g. http://vllm:8000/v1."
    )
    openai_api_key: str = Field("", description="ENGINE=openai: bearer token; empty = none.")
    openai_data_dir: str = Field(
        "",
        description="ENGINE=openai: DATA_DIR as the server sees it (the bot's data volume "
        "mounted into the vLLM container); empty = the same path.",
    )
    openai_prompt_format: Literal["ids", "text"] = Field(
        "ids",
        description="ENGINE=openai: send the prompt as token ids (the server cannot parse text "
        "into control tokens again) or as text (only for a server that takes no ids).",
    )
    openai_timeout_seconds: float = Field(
        120.0, gt=0, description="ENGINE=openai: longest wait for the server, in seconds."
    )
    reply_quiet_seconds: float = Field(
        1.5, ge=0, description="Wait this long after a user's last message before replying."
    )
    reply_split_lines: bool = Field(
        True, description="Send each line of a reply as its own message, as the owner writes."
    )
    reply_streaming: bool = Field(
        True,
        description="Show a reply while it is generated (a draft in private chats, an edited "
        "message in groups); false sends it only when complete.",
    )
    reply_label_buttons: bool = Field(
        False,
        description="Put 👍/👎 buttons under the clone's replies to you, for chats where "
        "Telegram does not deliver your reactions (groups where the bot is not an admin).",
    )
    stream_edit_interval: float = Field(
        1.0,
        ge=0.1,
        description="Seconds between two updates of a streaming reply in one chat.",
    )
    telegram_rate_limit: float = Field(
        30.0,
        ge=0,
        description="Bot API requests per second across all chats (Telegram's flood limit); "
        "0 = no overall cap (per-group limits and RetryAfter are still honoured).",
    )

    @field_validator("allowed_user_ids", "admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError(
                    f"{str(info.field_name).upper()} must be numeric Telegram user ids "
                    "separated by commas"
                ) from exc
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"TIMEZONE {value!r} is not a time zone name; use one like 'Europe/Moscow'"
            ) from exc
        return value

    @field_validator("webhook_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError(
                f"WEBHOOK_URL {value!r} must be a public https:// URL (Telegram posts only "
                "to https); leave it empty for long polling"
            )
        return value

    @field_validator("webhook_secret_token")
    @classmethod
    def _secret_with_webhook(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("webhook_url") and not value:
            raise ValueError(
                "WEBHOOK_SECRET_TOKEN is required when WEBHOOK_URL is set: choose 1-256 "
                "characters of A-Z, a-z, 0-9, _ and - (e.g. from `openssl rand -hex 32`)"
            )
        if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ValueError(
                "WEBHOOK_SECRET_TOKEN may only hold 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        return value

    @model_validator(mode="after")
    def _serving_combinations(self) -> Settings:
        if self.engine == "openai" and not self.openai_base_url:
            raise ValueError(
                "OPENAI_BASE_URL is required with ENGINE=openai, e.g. http://vllm:8000/v1"
            )
        return self

    def is_admin(self, user_id: int) -> bool:
        """The owner or one of ADMIN_IDS: may do everything, owner-only commands included."""
        return user_id == self.owner_id or user_id in self.admin_ids

    def may_chat(self, user_id: int) -> bool:
        """May talk with the clone: admins, ALLOWED_USER_IDS, or anyone with ALLOW_ALL."""
        return self.allow_all or self.is_admin(user_id) or user_id in self.allowed_user_ids

    @property
    def zone(self) -> ZoneInfo:
        """TIMEZONE as a tzinfo: cron schedules, and exports whose dates have no offset."""
        return ZoneInfo(self.timezone)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def secrets(self) -> tuple[str, ...]:
        """The values no log line and no message may show (the bot token first)."""
        return (self.telegram_bot_token, self.webhook_secret_token, self.openai_api_key)

    def missing_for_bot(self) -> list[str]:
        """Names of the settings the bot cannot start without."""
        missing = []
        if not self.telegram_bot_token:
            missing.append("TELEGRAM_BOT_TOKEN (the token @BotFather gave you)")
        if self.owner_id <= 0:
            missing.append("OWNER_ID (your numeric Telegram user id, e.g. from @userinfobot)")
        return missing


class SettingsError(Exception):
    """Settings that cannot be used; the message names each setting and the fix."""


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment and `.env`, with a readable error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"Invalid settings: {problems}") from exc
