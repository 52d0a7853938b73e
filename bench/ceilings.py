"""Ceiling apps: the least a server on this machine can do per request, to compare trainhub with.

Served by the same uvicorn (httptools, uvloop) as `trainhub server`:
- POST /insert: a FastAPI route that parses a small JSON body and inserts one row into SQLite
  (WAL, synchronous=NORMAL, one connection), the least a metrics upload must do;
- POST /hello: a FastAPI route that answers a fixed JSON object (the least a heartbeat costs);
- POST /sink: streams a multipart body through python-multipart into a file and fsyncs it (the
  least a weights upload costs before its sha256, which bench/hotpaths.py measures apart); every
  64 MiB it hands the file's pages to the disk the way trainhub's storage does (decision 0027),
  so the page cache costs both the same.

Linux only (posix_fadvise).

Run: python bench/ceilings.py PORT DATA_DIR
"""

import os
import sqlite3
import sys
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from python_multipart.multipart import MultipartParser, parse_options_header

WRITE_BACK_EVERY_BYTES = 64 * 1024 * 1024
DATA = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")
app = FastAPI()
_db = sqlite3.connect(DATA / "ceiling.db", check_same_thread=False, isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS metrics (id INTEGER PRIMARY KEY, body TEXT)")
_lock = threading.Lock()


@app.post("/insert")
def insert(body: dict[str, object]) -> dict[str, bool]:
    with _lock:
        _db.execute("INSERT INTO metrics (body) VALUES (?)", (str(body),))
    return {"success": True}


@app.post("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.post("/sink")
async def sink(request: Request) -> dict[str, object]:
    _, options = parse_options_header(request.headers["content-type"])
    size = handed = 0
    with open(DATA / "sink.bin", "wb") as out:

        def on_part_data(data: bytes, start: int, end: int) -> None:
            nonlocal size, handed
            view = memoryview(data)[start:end]
            out.write(view)
            size += end - start
            if size - handed >= WRITE_BACK_EVERY_BYTES:
                out.flush()
                os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                handed = size

        parser = MultipartParser(options[b"boundary"], {"on_part_data": on_part_data})
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        out.flush()
        os.fsync(out.fileno())
    return {"size": size}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
