"""Numbered schema migrations, applied in order when the database opens.

Each migration is a tuple of SQL statements. It runs in one transaction together with the
row in ``schema_version`` that records it, so a failed migration leaves no trace. An applied
migration is never edited: a change to the schema is a new ``m00N_...`` appended to
``MIGRATIONS``.

All timestamps are unix seconds (INTEGER, UTC); metrics and counts are JSON text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import aiosqlite

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """One schema step: ``version`` is its number, ``name`` its ``m00N_topic`` name."""

    version: int
    name: str
    statements: tuple[str, ...]


m001_initial = Migration(
    version=1,
    name="m001_initial",
    statements=(
        """
        CREATE TABLE chats (
            chat_id    INTEGER PRIMARY KEY,
            title      TEXT,
            chat_type  TEXT NOT NULL,
            first_seen INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE imports (
            import_id   INTEGER PRIMARY KEY,
            file_sha256 TEXT NOT NULL,
            file_name   TEXT,
            owner_id    INTEGER NOT NULL,
            started_at  INTEGER NOT NULL,
            finished_at INTEGER,
            counts      TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE INDEX imports_by_sha256 ON imports (file_sha256)
        """,
        """
        CREATE TABLE messages (
            chat_id        INTEGER NOT NULL REFERENCES chats (chat_id),
            message_id     INTEGER NOT NULL,
            sender_id      INTEGER,
            sender_name    TEXT,
            is_owner       INTEGER NOT NULL CHECK (is_owner IN (0, 1)),
            date_utc       INTEGER NOT NULL,
            text           TEXT NOT NULL DEFAULT '',
            kind           TEXT NOT NULL DEFAULT 'text',
            reply_to_id    INTEGER,
            forwarded_from TEXT,
            via_bot        TEXT,
            source         TEXT NOT NULL CHECK (source IN ('export', 'live')),
            import_id      INTEGER REFERENCES imports (import_id),
            UNIQUE (chat_id, message_id)
        )
        """,
        """
        CREATE INDEX messages_by_chat_date ON messages (chat_id, date_utc)
        """,
        """
        CREATE TABLE training_runs (
            run_id      INTEGER PRIMARY KEY,
            status      TEXT NOT NULL CHECK (
                status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')
            ),
            "trigger"   TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            started_at  INTEGER,
            finished_at INTEGER,
            pid         INTEGER,
            run_dir     TEXT,
            metrics     TEXT NOT NULL DEFAULT '{}',
            error       TEXT
        )
        """,
        """
        CREATE TABLE adapters (
            adapter_id INTEGER PRIMARY KEY,
            run_id     INTEGER REFERENCES training_runs (run_id),
            path       TEXT NOT NULL,
            promoted   INTEGER NOT NULL DEFAULT 0 CHECK (promoted IN (0, 1)),
            created_at INTEGER NOT NULL,
            metrics    TEXT NOT NULL DEFAULT '{}'
        )
        """,
        """
        CREATE UNIQUE INDEX adapters_one_promoted ON adapters (promoted) WHERE promoted = 1
        """,
        """
        CREATE TABLE clone_turns (
            id       INTEGER PRIMARY KEY,
            chat_id  INTEGER NOT NULL,
            role     TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text     TEXT NOT NULL,
            date_utc INTEGER NOT NULL
        )
        """,
        """
        CREATE INDEX clone_turns_by_chat ON clone_turns (chat_id, id)
        """,
    ),
)

m002_live_collection = Migration(
    version=2,
    name="m002_live_collection",
    statements=(
        # Groups the owner switched collection on for (/collect on|off in the group).
        """
        ALTER TABLE chats ADD COLUMN collect INTEGER NOT NULL DEFAULT 0
        """,
        """
        ALTER TABLE messages ADD COLUMN edited_at INTEGER
        """,
        """
        CREATE TABLE business_connections (
            connection_id TEXT PRIMARY KEY,
            user_id       INTEGER NOT NULL,
            user_chat_id  INTEGER NOT NULL,
            can_reply     INTEGER NOT NULL DEFAULT 0,
            is_enabled    INTEGER NOT NULL,
            updated_at    INTEGER NOT NULL
        )
        """,
        # Owner switches that outlive a restart (collection paused, ...): one row each.
        """
        CREATE TABLE bot_flags (
            name       TEXT PRIMARY KEY,
            value      INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )
        """,
    ),
)

m003_training_evals = Migration(
    version=3,
    name="m003_training_evals",
    statements=(
        # One row per evaluation during a run: the curve behind the final metrics.
        """
        CREATE TABLE training_evals (
            run_id     INTEGER NOT NULL REFERENCES training_runs (run_id) ON DELETE CASCADE,
            step       INTEGER NOT NULL,
            metrics    TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            PRIMARY KEY (run_id, step)
        )
        """,
    ),
)

m004_clone_messages = Migration(
    version=4,
    name="m004_clone_messages",
    statements=(
        # The Telegram messages that carried each clone reply, so a reply to one of them
        # (the owner's /fix) finds the turn it corrects.
        """
        CREATE TABLE clone_messages (
            chat_id    INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            turn_id    INTEGER NOT NULL REFERENCES clone_turns (id) ON DELETE CASCADE,
            PRIMARY KEY (chat_id, message_id)
        )
        """,
        """
        CREATE INDEX clone_messages_turn ON clone_messages (turn_id)
        """,
    ),
)

m005_group_talk = Migration(
    version=5,
    name="m005_group_talk",
    statements=(
        # Groups where the owner let the clone talk (/talk on|off in the group). A table of its
        # own, so /forget of a group's collected messages leaves this switch alone.
        """
        CREATE TABLE talk_groups (
            chat_id    INTEGER PRIMARY KEY,
            enabled    INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )
        """,
    ),
)

m006_run_location = Migration(
    version=6,
    name="m006_run_location",
    statements=(
        # Where a run's training process lives (runner kind, GPU host, its directory there),
        # so a restarted bot can find the process again and reattach or fail the run.
        """
        ALTER TABLE training_runs ADD COLUMN runner TEXT
        """,
        """
        ALTER TABLE training_runs ADD COLUMN host TEXT
        """,
        """
        ALTER TABLE training_runs ADD COLUMN remote_dir TEXT
        """,
    ),
)

m007_corrections = Migration(
    version=7,
    name="m007_corrections",
    statements=(
        # The owner's /fix of a clone reply: the better answer, with the conversation before
        # it (JSON list of {role, content}), kept for the next training run. A second /fix of
        # the same reply replaces the first.
        """
        CREATE TABLE corrections (
            id          INTEGER PRIMARY KEY,
            chat_id     INTEGER NOT NULL,
            turn_id     INTEGER NOT NULL,
            context     TEXT NOT NULL,
            clone_text  TEXT NOT NULL,
            better_text TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            UNIQUE (chat_id, turn_id, clone_text)
        )
        """,
    ),
)

m008_auto_replies = Migration(
    version=8,
    name="m008_auto_replies",
    statements=(
        # What Business auto-reply sent as the owner (the first message's id, the whole reply):
        # the history of the next auto-reply in that chat, also after a restart. Never
        # training text: Telegram's echoes of these messages are not stored as the owner's.
        """
        CREATE TABLE auto_replies (
            chat_id    INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            text       TEXT NOT NULL,
            date_utc   INTEGER NOT NULL,
            PRIMARY KEY (chat_id, message_id)
        )
        """,
    ),
)

m009_clone_turn_senders = Migration(
    version=9,
    name="m009_clone_turn_senders",
    statements=(
        # Who wrote a turn of a conversation with the clone, and the Telegram message that
        # carried it: the turn shaper names group speakers and orders a group's stored
        # messages and the clone's turns as training does. NULL in rows written before.
        """
        ALTER TABLE clone_turns ADD COLUMN message_id INTEGER
        """,
        """
        ALTER TABLE clone_turns ADD COLUMN sender_id INTEGER
        """,
        """
        ALTER TABLE clone_turns ADD COLUMN sender_name TEXT
        """,
    ),
)

# Which messages are the owner's own words for memory: typed text they wrote themselves.
_OWNER_WORDS = (
    "{row}.is_owner = 1 AND {row}.kind = 'text' AND {row}.forwarded_from IS NULL "
    "AND {row}.via_bot IS NULL AND {row}.text != ''"
)

m010_memory_index = Migration(
    version=10,
    name="m010_memory_index",
    statements=(
        # The owner's words (storage.memory): an FTS5 index over the view of the owner's text
        # messages (external content: the text is stored once, in messages). The view is the
        # one definition of what the index holds. Writers index the rows they insert, a
        # batch at a time (storage.memory.index_new_messages: a trigger would flush FTS5's
        # pending terms once per row, ten times the work); triggers follow every edit and
        # deletion (/forget, Business deletions). unicode61 folds case for Cyrillic and
        # Latin; word forms match through prefix queries (training.words).
        f"""
        CREATE VIEW owner_words AS
        SELECT rowid AS message_rowid, text FROM messages
        WHERE {_OWNER_WORDS.format(row="messages")}
        """,
        """
        CREATE VIRTUAL TABLE owner_words_index USING fts5(
            text,
            content = 'owner_words',
            content_rowid = 'message_rowid',
            tokenize = 'unicode61 remove_diacritics 2'
        )
        """,
        # Document counts per indexed term: retrieval picks its rarest terms by them.
        """
        CREATE VIRTUAL TABLE owner_words_terms USING fts5vocab(owner_words_index, 'row')
        """,
        # External content: a deletion names the text that was indexed, exactly.
        f"""
        CREATE TRIGGER owner_words_delete AFTER DELETE ON messages
        WHEN {_OWNER_WORDS.format(row="old")}
        BEGIN
            INSERT INTO owner_words_index (owner_words_index, rowid, text)
            VALUES ('delete', old.rowid, old.text);
        END
        """,
        f"""
        CREATE TRIGGER owner_words_update
        AFTER UPDATE OF is_owner, kind, text, forwarded_from, via_bot ON messages
        BEGIN
            INSERT INTO owner_words_index (owner_words_index, rowid, text)
            SELECT 'delete', old.rowid, old.text WHERE {_OWNER_WORDS.format(row="old")};
            INSERT INTO owner_words_index (rowid, text)
            SELECT new.rowid, new.text WHERE {_OWNER_WORDS.format(row="new")};
        END
        """,
        """
        INSERT INTO owner_words_index (owner_words_index) VALUES ('rebuild')
        """,
    ),
)

m011_teaching = Migration(
    version=11,
    name="m011_teaching",
    statements=(
        # The turns each clone reply answered, exactly as the clone saw them (JSON list of
        # {role, content}, system prompt excluded): /fix, reactions and preference pairs use
        # these, not a second shaping of the history.
        """
        CREATE TABLE clone_prompts (
            turn_id INTEGER PRIMARY KEY REFERENCES clone_turns (id) ON DELETE CASCADE,
            turns   TEXT NOT NULL
        )
        """,
        # The owner's verdict on a clone reply (a reaction, or a label button): good or bad,
        # with its own copy of the reply and its prompt, so /reset of the chat keeps it.
        """
        CREATE TABLE reply_labels (
            chat_id    INTEGER NOT NULL,
            turn_id    INTEGER NOT NULL,
            label      TEXT NOT NULL CHECK (label IN ('good', 'bad')),
            source     TEXT NOT NULL CHECK (source IN ('reaction', 'button')),
            context    TEXT NOT NULL,
            reply_text TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (chat_id, turn_id)
        )
        """,
        # One blind test per row: which held-out prompt of which adapter, where the owner's
        # real reply was shown (A or B), and the owner's answer once given.
        """
        CREATE TABLE quizzes (
            quiz_id     INTEGER PRIMARY KEY,
            adapter_id  INTEGER NOT NULL REFERENCES adapters (adapter_id) ON DELETE CASCADE,
            prompt_key  TEXT NOT NULL,
            owner_slot  TEXT NOT NULL CHECK (owner_slot IN ('A', 'B')),
            created_at  INTEGER NOT NULL,
            answer      TEXT CHECK (answer IN ('A', 'B', 'unsure')),
            answered_at INTEGER,
            UNIQUE (adapter_id, prompt_key)
        )
        """,
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    m001_initial,
    m002_live_collection,
    m003_training_evals,
    m004_clone_messages,
    m005_group_talk,
    m006_run_location,
    m007_corrections,
    m008_auto_replies,
    m009_clone_turn_senders,
    m010_memory_index,
    m011_teaching,
)

CREATE_SCHEMA_VERSION = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    )
"""

SELECT_VERSIONS = """
    SELECT version FROM schema_version ORDER BY version
"""

INSERT_VERSION = """
    INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)
"""


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer tgclone than the one running."""


async def schema_versions(conn: aiosqlite.Connection) -> list[int]:
    """The versions recorded in ``schema_version`` (empty for a new database)."""
    async with conn.execute(SELECT_VERSIONS) as cursor:
        return [int(row[0]) for row in await cursor.fetchall()]


async def apply_migrations(
    conn: aiosqlite.Connection, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[str]:
    """Apply, in order, every migration not yet recorded; return the names applied.

    The connection must be in autocommit mode (``isolation_level=None``): each migration
    gets its own ``BEGIN IMMEDIATE`` ... ``COMMIT``.
    """
    _check_order(migrations)
    await conn.execute(CREATE_SCHEMA_VERSION)
    done = set(await schema_versions(conn))
    known = {migration.version for migration in migrations}
    unknown = sorted(done - known)
    if unknown:
        raise SchemaTooNewError(
            f"The database has schema versions {unknown} that this tgclone does not know: "
            "it was written by a newer version. Upgrade tgclone, or point it at another "
            "data directory."
        )
    applied: list[str] = []
    for migration in migrations:
        if migration.version in done:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                INSERT_VERSION, (migration.version, migration.name, int(time.time()))
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            logger.error("Migration %s failed; the database is unchanged", migration.name)
            raise
        await conn.execute("COMMIT")
        applied.append(migration.name)
    return applied


def _check_order(migrations: tuple[Migration, ...]) -> None:
    # Increasing, not contiguous: work in progress reserves its number, so a database may get a
    # lower number after a higher one (each migration touches only its own tables).
    versions = [migration.version for migration in migrations]
    if any(v < 1 for v in versions) or versions != sorted(set(versions)):
        raise ValueError(f"migrations must be numbered from 1, increasing, got {versions}")
