"""Rate-limit windows shared by the worker processes of one server, through a mapped file."""

import subprocess
import sys
from pathlib import Path

from limits import parse

from trainhub.server.sharedcounts import MAX_SLOTS, SharedWindows

COUNT_IN_CHILD = """
import sys
from pathlib import Path
from limits import parse
from trainhub.server.sharedcounts import SharedWindows
windows = SharedWindows(Path(sys.argv[1]))
print(sum(windows.hit("user:a", 0, parse("10/minute"))[0] for _ in range(int(sys.argv[2]))))
"""


def test_two_processes_share_one_budget(tmp_path: Path) -> None:
    path = tmp_path / "ratelimits.shm"
    here = SharedWindows(path)
    item = parse("10/minute")
    assert sum(here.hit("user:a", 0, item)[0] for _ in range(4)) == 4
    child = subprocess.run(
        [sys.executable, "-c", COUNT_IN_CHILD, str(path), "10"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert child.stdout.strip() == "6"  # the child got what was left of the window
    assert here.hit("user:a", 0, item)[0] is False
    assert here.hit("user:b", 0, item)[0] is True  # another identity counts apart


def test_a_window_opens_again_when_it_ends(tmp_path: Path) -> None:
    now = [1000.0]
    windows = SharedWindows(tmp_path / "w.shm", clock=lambda: now[0])
    item = parse("2/second")
    assert [windows.hit("k", 0, item)[0] for _ in range(3)] == [True, True, False]
    now[0] += 1.0
    allowed, count, ends_at = windows.hit("k", 0, item)
    assert allowed and count == 1 and ends_at == now[0] + 1


def test_more_identities_than_slots_reuse_the_oldest_slot_and_never_grow(tmp_path: Path) -> None:
    path = tmp_path / "w.shm"
    now = [0.0]
    windows = SharedWindows(path, clock=lambda: now[0])
    item = parse("1/hour")
    for i in range(2_000):
        now[0] += 0.001
        assert windows.hit(f"ip:{i}", 0, item)[0]
    assert path.stat().st_size == MAX_SLOTS * 24
