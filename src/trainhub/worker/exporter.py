"""The export child process: `python -m trainhub.worker.exporter SPEC` runs ultralytics' exporter.

A worker starts one per export (exports.py), so that an exporter that crashes, leaks or hangs
takes only this process down, and the worker can stop it at its timeout. SPEC is JSON:
`{"weights": path, "format": name, "result": path}`; the outcome is written as JSON to `result`:
`{"ok": true, "path": output}` or `{"ok": false, "error": text, "missing": module or null}`.
The process ends by itself when its parent does (its stdin closes), so a worker killed mid-export
leaves no exporter behind.
"""

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

EXIT_ORPHANED = 3


def _exit_with_parent() -> None:
    """End this process as soon as stdin closes: the worker that started it is gone."""

    def watch() -> None:
        while sys.stdin.buffer.read(1):
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def export(weights: str, format_name: str) -> dict[str, Any]:
    """Export `weights` to `format_name` with ultralytics; return the outcome (see above)."""
    try:
        from ultralytics import YOLO  # type: ignore[import-not-found]  # not in the dev venv

        output = YOLO(weights).export(format=format_name, device="cpu")
    except ModuleNotFoundError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "missing": exc.name}
    except BaseException as exc:  # the exporter's own error, whatever it is, is the answer
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "missing": None}
    if not output:
        return {"ok": False, "error": "the exporter returned no file", "missing": None}
    return {"ok": True, "path": str(output)}


def main(argv: list[str]) -> int:
    """Run the export SPEC names (argv[1]) and write its outcome."""
    spec = json.loads(argv[1])
    _exit_with_parent()
    outcome = export(spec["weights"], spec["format"])
    Path(spec["result"]).write_text(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
