"""Console output of Platform runs: store each chunk once, read the lines back in order.

Chunks arrive out of order and may repeat; they are kept by chunk id and read in chunk order,
ANSI colour codes included (the dashboard renders them, the text read strips them;
docs/protocol/platform.md §9.8). The live progress-bar frames of a run are kept on the run.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from trainhub.protocol.platform import ConsoleOutput
from trainhub.server.db import console as queries
from trainhub.server.db import owned
from trainhub.server.db import platform_runs as run_queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, utcnow
from trainhub.server.services.runs import Silence, current_run

MAX_PROGRESS_BARS = 8
MAX_FRAME_CHARS = 1000
DEFAULT_TAIL_CHUNKS = 2000
# CSI sequences (colours, cursor moves) and the two-character escapes
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Return `text` without terminal escape sequences."""
    return _ANSI.sub("", text)


def _frames(progress: dict[str, Any]) -> dict[str, str]:
    """Return the live progress-bar frames worth keeping (a few, each cut to a line)."""
    return {
        str(bar)[:40]: str(frame).replace("\x00", "")[:MAX_FRAME_CHARS]
        for bar, frame in list(progress.items())[:MAX_PROGRESS_BARS]
    }


def record_chunk(
    db: Database, user_id: str, model_id: str, data: ConsoleOutput, silence: Silence
) -> None:
    """Store a chunk of console lines (a repeat is ignored) and the run's live progress bars."""
    now = utcnow()
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = current_run(session, row, user_id, now, silence)
        if data.content or data.lineCount:
            queries.add_chunk(
                session,
                row.seq,
                data.chunkId,
                run_id=run.id,
                content=data.content.replace("\x00", ""),
                line_count=data.lineCount,
            )
        if run.ended_at is None:
            run.progress = _frames(data.progress)
        run_queries.note_event(session, row, run, now, silence.of(run))


@dataclass(frozen=True)
class Console:
    """A model's console: chunks in order (id, text) and the live progress bars of its run."""

    chunks: list[tuple[int, str]]
    progress: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """Return the console as plain text: one line per line, colour codes stripped."""
        lines = [strip_ansi(text) for _, text in self.chunks if text]
        return "\n".join(lines) + ("\n" if lines else "")


def read_console(
    db: Database,
    model_id: str,
    reader_id: str | None,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> Console:
    """Return a model's console as `reader_id` may see it (404 otherwise).

    `after` keeps the chunks after that chunk id (what a live page has not shown yet); `limit`
    keeps at most that many (the newest, without `after`).
    """
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, reader_id)
        chunks = queries.read_chunks(session, row.seq, after=after, limit=limit)
        run = run_queries.latest_run(session, row.seq)
        progress = dict(run.progress) if run is not None and run.ended_at is None else {}
    return Console([(c.chunk_id, c.content) for c in chunks], progress)
