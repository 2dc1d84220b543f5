"""Deployment settings: one typed object from the environment and `.env`, built at the edge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from training.config import DEFAULT_SYSTEM_PROMPT

CLOUD_API_BASE_URL = "https://api.telegram.org/bot"
CLOUD_FILE_BASE_URL = "https://api.telegram.org/file/bot"


class Settings(BaseSettings):
    """Everything a deployment chooses. Read once by the CLI and passed down."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    telegram_bot_token: str = Field("", description="Bot token from @BotFather.")
    owner_id: int = Field(0, description="The owner's Telegram user id.")
    allowed_user_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Who may chat with the clone besides the owner (comma-separated)."
    )
    data_dir: Path = Field(Path("./data"), description="Home of the SQLite file and adapters.")
    base_model: str = Field("Qwen/Qwen2.5-7B-Instruct", description="Hub id or local path.")
    telegram_api_base_url: str = Field(CLOUD_API_BASE_URL)
    telegram_file_base_url: str = Field(CLOUD_FILE_BASE_URL)
    telegram_local_mode: bool = Field(
        False, description="The Bot API server runs with --local (no 20 MB download limit)."
    )
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT)
    retrain_cron: str = Field("", description="Crontab line (e.g. '0 4 * * 0'); empty = off.")
    timezone: str = Field(
        "UTC", description="Zone of RETRAIN_CRON and of exports without offsets."
    )
    session_gap_minutes: float = Field(30.0, gt=0)
    history_turns: int = Field(12, ge=0, description="Turns of chat history sent to the clone.")
    # Training overrides (TRAIN_*); None keeps the recipe default of training/config.py.
    train_learning_rate: float | None = Field(None, gt=0)
    train_lr_scheduler_type: str | None = None
    train_warmup_ratio: float | None = Field(None, ge=0, lt=1)
    train_epochs: float | None = Field(None, gt=0)
    train_max_steps: int | None = None
    train_batch_size: int | None = Field(None, ge=1)
    train_eval_batch_size: int | None = Field(None, ge=1)
    train_grad_accum: int | None = Field(None, ge=1)
    train_eval_steps: int | None = Field(None, ge=1)
    train_logging_steps: int | None = Field(None, ge=1)
    train_early_stopping_patience: int | None = Field(None, ge=1)
    train_early_stopping_threshold: float | None = Field(None, ge=0)
    train_lora_r: int | None = Field(None, ge=1)
    train_lora_alpha: int | None = Field(None, ge=1)
    train_lora_dropout: float | None = Field(None, ge=0, lt=1)
    train_target_modules: str | None = Field(
        None, description="Comma-separated module names, or 'all-linear'."
    )
    train_max_length: int | None = Field(None, ge=16)
    train_quantization: Literal["auto", "4bit", "none"] | None = None
    train_seed: int | None = None
    promote_min_improvement: float = Field(
        0.01, ge=0, description="eval_loss a new adapter must gain over the serving one."
    )
    # Serving: None keeps what clone.json says.
    generation_do_sample: bool | None = None
    generation_max_new_tokens: int | None = None
    generation_temperature: float | None = None
    engine_device: Literal["auto", "cpu", "cuda"] = "auto"
    reply_quiet_seconds: float = Field(
        1.5, ge=0, description="Wait this long after a user's last message before replying."
    )
    reply_split_lines: bool = Field(
        True, description="Send each line of a reply as its own message, as the owner writes."
    )

    @field_validator("allowed_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError as exc:
                raise ValueError(
                    "ALLOWED_USER_IDS must be numeric Telegram user ids separated by commas"
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

    @property
    def zone(self) -> ZoneInfo:
        """TIMEZONE as a tzinfo: cron schedules, and exports whose dates have no offset."""
        return ZoneInfo(self.timezone)

    @property
    def session_gap(self) -> timedelta:
        return timedelta(minutes=self.session_gap_minutes)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "tgclone.sqlite3"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

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
