"""tests/servers.py `free_port`: ports taken together before any is bound are distinct."""

from tests.servers import PORTS_PER_WORKER, free_port


def test_ports_taken_before_any_is_bound_are_all_different() -> None:
    # a collision among SeaweedFS's 11 ports failed a whole worker's S3 tests once; 200 draws
    # from a block of 1,000 would repeat one almost surely if nothing prevented it
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert max(ports) - min(ports) < PORTS_PER_WORKER
