"""The `serial` modules and the groups `make test` hands out (tests/conftest.py, decision 0025).

A module of `serial` tests left out of SERIAL_GROUPS would go out as a unit of its own after the
groups, and the serial phase would last as long as it; a module named there that has no
`serial` test any more would hold a place it does not use.
"""

import re

from tests.conftest import SERIAL_GROUPS, SERIAL_MODULES, TESTS

MARK = re.compile(r"pytest\.mark\.serial\b")


def test_the_groups_name_exactly_the_modules_of_serial_tests() -> None:
    marked = {
        path.relative_to(TESTS).as_posix()
        for path in TESTS.rglob("test_*.py")
        if MARK.search(path.read_text())
    }
    assert marked, "no serial test found: the mark's spelling changed?"
    assert sorted(SERIAL_MODULES) == sorted(marked)
    assert len(SERIAL_MODULES) == len(set(SERIAL_MODULES)), "a module is in two groups"


def test_there_is_a_group_for_each_of_make_tests_workers() -> None:
    workers = re.search(r"-n (\d+)", (TESTS.parent / "Makefile").read_text())
    assert workers is not None
    assert len(SERIAL_GROUPS) == int(workers[1])
    assert all(isinstance(module, str) for group in SERIAL_GROUPS for module in group)
    assert all((TESTS / module).is_file() for module in SERIAL_MODULES)
