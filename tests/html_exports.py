"""The hand-written Telegram Desktop HTML export fixture (see its README) and its owner, and
deterministic zips of many small chat pages built like it."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "telegram-exports"
HTML_OWNER_NAME = "Alex Morgan"
"""The owner, as the fixture's pages sign their messages."""

PAGE_HEAD = """<!DOCTYPE html>
<html>
 <head><meta charset="utf-8"/><title>Exported Data</title></head>
 <body>
  <div class="page_wrap">
   <div class="page_header"><div class="text bold">{title}</div></div>
   <div class="page_body chat_page">
    <div class="history">
"""
PAGE_MESSAGE = """     <div class="message default clearfix" id="message{id}">
      <div class="body">
       <div class="pull_right date details" title="{date}">{time}</div>
       <div class="from_name">{sender}</div>
       <div class="text">Message number {id}</div>
      </div>
     </div>
"""
PAGE_TAIL = """    </div>
   </div>
  </div>
 </body>
</html>
"""
CHAT_PAGES_START = datetime(2024, 3, 30, 9, 0, tzinfo=UTC)


def chat_page(first_id: int, messages: int, title: str = "Sam Lee") -> str:
    """One small chat page as Telegram Desktop writes it: ``messages`` in turn from the owner."""
    parts = [PAGE_HEAD.format(title=title)]
    for message_id in range(first_id, first_id + messages):
        when = CHAT_PAGES_START + timedelta(minutes=message_id)
        parts.append(
            PAGE_MESSAGE.format(
                id=message_id,
                date=when.strftime("%d.%m.%Y %H:%M:%S UTC+00:00"),
                time=when.strftime("%H:%M"),
                sender=HTML_OWNER_NAME if message_id % 2 else title,
            )
        )
    parts.append(PAGE_TAIL)
    return "".join(parts)


def write_html_zip(path: Path, pages: int, messages_per_page: int = 5) -> Path:
    """A deterministic zip of one chat's ``pages`` pages: messages.html, messages2.html..."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for page in range(1, pages + 1):
            name = "messages.html" if page == 1 else f"messages{page}.html"
            first_id = 1 + (page - 1) * messages_per_page
            info = zipfile.ZipInfo(f"ChatExport_2024-04-01/{name}", (2024, 4, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, chat_page(first_id, messages_per_page))
    return path
