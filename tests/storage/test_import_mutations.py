"""Random mutations of real exports: each is imported, or refused with a specific ExportError.

Never another exception, never the bare base class, never message text in the refusal, and
after a refusal the database is byte for byte what it was. Seeds are fixed: a failure names
the mutant, and the same run reproduces it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from storage import errors, import_pipeline
from storage.db import Database
from storage.export_format import join_text
from storage.importer import import_export
from tests.html_exports import HTML_OWNER_NAME
from tests.storage.exports import EXPORTS_DIR, SAMPLE_OWNERS, db_file_digest
from tests.storage.mutations import Mutant, html_mutants, mutants

SOURCES = [
    EXPORTS_DIR / "format-eras" / "2020-01.json",  # integer from_id, date without unixtime
    EXPORTS_DIR / "format-eras" / "2021-06_supergroup.json",
    EXPORTS_DIR / "format-eras" / "2023-01.json",  # a negative message id, a migrated group
    EXPORTS_DIR / "format-eras" / "2024-01_inline-bot-buttons.json",
    EXPORTS_DIR / "format-eras" / "2025-12.json",
    EXPORTS_DIR / "samples" / "langchain-personal-chat.json",  # single chat: owner given
    EXPORTS_DIR / "samples" / "saved-messages-2021.json",  # single chat: owner from its id
]
MUTANTS_PER_SOURCE = 60
IN_CHILD_EVERY = 10
"""Every tenth mutant is parsed in the importer's child process (a spawn costs a start-up)."""
ZIPPED_EVERY = 7
HTML_DIR = EXPORTS_DIR / "html"
HTML_MUTANTS = 60


def message_texts(export: dict[str, Any]) -> set[str]:
    """The texts of the export's messages that are long enough to be recognised in a sentence."""
    chats = [export] if "messages" in export else export["chats"]["list"]
    texts = {join_text(message.get("text")) for chat in chats for message in chat["messages"]}
    return {text for text in texts if len(text.strip()) >= 8}


def write_mutant(tmp_path: Path, mutant: Mutant, zipped: bool) -> Path:
    if not zipped:
        path = tmp_path / "result.json"
        path.write_bytes(mutant.content)
        return path
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("DataExport_2025-01-01/result.json", mutant.content)
    return path


async def import_or_refusal(
    db: Database, path: Path, context: str, texts: set[str], **kwargs: Any
) -> str:
    """``imported``, or the name of the specific ExportError that refused ``path``."""
    before = await db_file_digest(db)
    try:
        await import_export(db, path, **kwargs)
    except errors.ExportError as error:
        message = str(error)
        assert type(error) is not errors.ExportError, context
        assert path.name in message, context
        assert not [text for text in texts if text in message], context
        assert await db_file_digest(db) == before, context
        return type(error).__name__
    except Exception as error:  # the failure this test exists to report, with its mutant
        pytest.fail(f"{context}: {type(error).__name__}: {error}"[:2000])
    return "imported"


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
async def test_mutants_are_imported_or_refused_specifically(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path
) -> None:
    export = json.loads(source.read_text("utf-8"))
    texts = message_texts(export)
    owner = SAMPLE_OWNERS.get(source.name)
    outcomes: dict[str, int] = {}
    seed = SOURCES.index(source)
    for number, mutant in enumerate(mutants(export, seed, MUTANTS_PER_SOURCE)):
        in_child = number % IN_CHILD_EVERY == IN_CHILD_EVERY - 1
        monkeypatch.setattr(import_pipeline, "PIPELINE_MIN_BYTES", 0 if in_child else 10**12)
        path = write_mutant(tmp_path, mutant, zipped=number % ZIPPED_EVERY == 0)
        context = f"mutant {number} of seed {seed} ({mutant.description})"
        outcome = await import_or_refusal(db, path, context, texts, owner_id=owner)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The mutations reach the values: most imports still succeed, some are refused.
    assert outcomes.get("imported", 0) >= MUTANTS_PER_SOURCE // 4, outcomes
    assert sum(outcomes.values()) - outcomes.get("imported", 0) >= 3, outcomes


async def test_html_mutants_are_imported_or_refused_specifically(
    db: Database, tmp_path: Path
) -> None:
    pages = {
        "DataExport/" + page.relative_to(HTML_DIR).as_posix(): page.read_text("utf-8")
        for page in sorted(HTML_DIR.glob("chats/*/messages*.html"))
    }
    texts = {"Are we still on for Sunday?", "I packed a secret snack"}
    outcomes: dict[str, int] = {}
    for number, (description, mutant) in enumerate(html_mutants(pages, 0, HTML_MUTANTS)):
        path = tmp_path / "export.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in mutant.items():
                archive.writestr(name, text)
        context = f"HTML mutant {number} ({description})"
        outcome = await import_or_refusal(db, path, context, texts, owner_name=HTML_OWNER_NAME)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("imported", 0) >= HTML_MUTANTS // 4, outcomes
    assert outcomes.get("MalformedValueError", 0) >= 3, outcomes
