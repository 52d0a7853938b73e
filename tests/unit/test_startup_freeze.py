"""A server process keeps its start-up objects out of later garbage collections."""

import gc

from trainhub.server.app import freeze_startup_objects


def test_the_objects_made_before_serving_leave_the_collected_generations() -> None:
    made_at_startup = [[n] for n in range(1000)]  # lists, which the collector always tracks
    gc.collect()  # survivors of a full collection: the oldest generation, walked by every one
    assert any(obj is made_at_startup for obj in gc.get_objects(generation=2))
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before + len(made_at_startup)
        assert not any(obj is made_at_startup for obj in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()  # a test worker frees its objects; only a server process stays frozen
    assert gc.get_freeze_count() == 0
