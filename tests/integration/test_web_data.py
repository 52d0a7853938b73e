"""Dashboard data in-process: list filters and pagination, chart columns, downsampling, SSE."""

import json
import math
import random
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert, select, update

from tests.factories import (
    Users,
    create_model,
    epoch_metrics,
    ok,
    revoke_key,
    upload_weights,
    weights_file,
)
from tests.integration.test_web import sign_in
from tests.testclient import TestClient
from trainhub.server.db import metrics
from trainhub.server.db.tables import AgentRow, MetricRow, ModelRow, utcnow
from trainhub.server.services import dashboard
from trainhub.server.state import hub_state
from trainhub.server.web import charts, live

JSON = {"accept": "application/json"}


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


def beat(client: TestClient, model_id: str, **body) -> str:
    payload = {"agent": "trainer", "agentId": None, "interval": 30, **body}
    return str(ok(client.post(f"/v1/agent/heartbeat/models/{model_id}", json=payload))["agentId"])


def listed(html: str) -> list[str]:
    """Return the ids of the model rows on a list page, in order."""
    return re.findall(r'<tr data-id="([A-Za-z0-9]{20})">', html)


# --- list ---------------------------------------------------------------------------------


def test_the_list_filters_by_status_including_online_and_offline(
    app, alice, alice_web, tmp_path: Path
) -> None:
    new = create_model(alice, meta={"name": "new"})
    online = create_model(alice, meta={"name": "online"})
    beat(alice, online)
    offline = create_model(alice, meta={"name": "offline"})
    beat(alice, offline, interval=1)
    with hub_state(app).db.write() as session:
        session.execute(
            update(AgentRow)
            .where(AgentRow.interval_s == 1)
            .values(last_seen=utcnow() - timedelta(seconds=5))
        )
    trained = create_model(alice, meta={"name": "trained"})
    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, trained, path, final=True, epoch=2))
    failed = create_model(alice, meta={"name": "failed"})
    beat(alice, failed)
    beat(alice, failed, state="failed")
    expected = {"new": new, "online": online, "offline": offline, "trained": trained}
    expected["failed"] = failed
    for status, model_id in expected.items():
        assert listed(alice_web.get(f"/models?status={status}").text) == [model_id], status
    assert set(listed(alice_web.get("/models").text)) == set(expected.values())
    page = alice_web.get("/models").text
    assert "training, offline</span>" not in page and "training, offline since" in page


def test_the_list_filters_by_project(alice, alice_web) -> None:
    project = ok(alice.post("/v1/projects", json={"meta": {"name": "boats"}}))["id"]
    inside = create_model(alice, projectId=project)
    create_model(alice)
    page = alice_web.get(f"/models?project={project}").text
    assert listed(page) == [inside]
    assert f'<option value="{project}" selected>boats</option>' in page
    assert listed(alice_web.get(f"/projects/{project}").text) == [inside]


def test_the_list_pages_with_a_cursor(app, users, alice_web) -> None:
    from trainhub.server.db.models import create_model as create_row

    with hub_state(app).db.write() as session:
        made = [
            create_row(session, users.alice.id, {"meta": {"name": f"m{i}"}}).id for i in range(120)
        ]
    first = alice_web.get("/models").text
    assert "120 models" in first
    page_one = listed(first)
    assert page_one == made[::-1][:50]
    cursor = re.search(r'href="/models\?after=([A-Za-z0-9]{20})" rel="next"', first)
    assert cursor
    seen = list(page_one)
    while cursor:
        page = alice_web.get(f"/models?after={cursor.group(1)}").text
        seen += listed(page)
        cursor = re.search(r'href="/models\?after=([A-Za-z0-9]{20})" rel="next"', page)
    assert seen == made[::-1]


def test_the_list_shows_epoch_of_planned_epochs_and_the_best_metric(alice, alice_web) -> None:
    model_id = create_model(alice, config={"epochs": 10})
    for epoch, value in ((0, 0.2), (1, 0.5), (2, 0.4)):
        metrics = epoch_metrics(epoch, **{"metrics/mAP50-95(B)": value})
        ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))
    page = alice_web.get("/models").text
    assert '<td data-field="epoch">3 of 10</td>' in page
    assert '<td data-field="best">0.5</td>' in page


def test_the_best_metric_follows_batches_lower_epochs_and_a_reset(alice, alice_web) -> None:
    """The list reads the best metric kept on the model, so every write path must keep it."""
    model_id = create_model(alice, config={"epochs": 10})
    batch = {
        str(epoch): json.dumps({"metrics/mAP50-95(B)": value, "train/box_loss": 1.0})
        for epoch, value in ((0, 0.3), (1, 0.7), (2, 0.1))
    }
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": batch}))
    later = {"3": json.dumps({"metrics/mAP50-95(B)": 0.6}), "4": json.dumps({"lr/pg0": 0.01})}
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": later}))
    assert '<td data-field="best">0.7</td>' in alice_web.get("/models").text
    ok(alice.post("/model-reset", json={"modelId": model_id}))
    row = re.search(
        rf'data-id="{model_id}".*?<td data-field="best">([^<]*)</td>',
        alice_web.get("/models").text,
        re.S,
    )
    assert row and row.group(1) == "-"


# --- chart data ---------------------------------------------------------------------------


def upload_epochs(client: TestClient, model_id: str, count: int, names: int) -> None:
    rng = random.Random(7)
    for start in range(0, count, 250):  # stay under the server's JSON body limit
        metrics = {
            str(e): json.dumps({f"train/loss{n}": rng.random() * 10 for n in range(names)})
            for e in range(start, min(count, start + 250))
        }
        ok(client.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))


def test_chart_data_is_columnar(alice, alice_web) -> None:
    model_id = create_model(alice)
    for epoch in range(3):
        metrics = epoch_metrics(epoch, **{"train/box_loss": 1.0 / (epoch + 1), "lr/pg0": 0.01})
        ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))
    data = alice_web.get(f"/models/{model_id}/chart.json", headers=JSON).json()
    assert data["epochs"] == [0, 1, 2]
    assert data["series"] == {"lr/pg0": [0.01] * 3, "train/box_loss": [1.0, 0.5, 0.333333]}
    assert data["groups"] == {"train": ["train/box_loss"], "other": ["lr/pg0"]}
    assert data["downsampled"] is False and data["total"] == 3
    assert data["version"]["epoch"] == 2 and data["version"]["count"] == 3
    window = alice_web.get(f"/models/{model_id}/chart.json?first=1&last=1", headers=JSON).json()
    assert window["epochs"] == [1]


def test_missing_and_non_finite_values_are_gaps(alice, alice_web) -> None:
    model_id = create_model(alice)
    raw = {"0": '{"a": 1.0}', "1": '{"a": NaN, "b": 2.0}', "2": '{"a": Infinity}'}
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": raw}))
    data = alice_web.get(f"/models/{model_id}/chart.json", headers=JSON).json()
    assert data["series"] == {"a": [1.0, None, None], "b": [None, 2.0, None]}


def test_long_series_are_downsampled_keeping_the_envelope(alice, alice_web) -> None:
    model_id = create_model(alice)
    upload_epochs(alice, model_id, 1000, 30)
    full = alice_web.get(f"/models/{model_id}/chart.json?points=5000", headers=JSON).json()
    assert len(full["epochs"]) == 1000 and full["downsampled"] is False
    small = alice_web.get(f"/models/{model_id}/chart.json?points=100", headers=JSON).json()
    assert small["downsampled"] is True and small["total"] == 1000
    assert len(small["epochs"]) <= 100 and small["epochs"] == sorted(set(small["epochs"]))
    assert len(small["series"]) == 30
    for name, values in full["series"].items():
        kept = small["series"][name]
        assert len(kept) == len(small["epochs"])
        assert min(kept) == min(values) and max(kept) == max(values)
        assert kept[0] == values[0] and kept[-1] == values[-1]


def test_downsampling_keeps_every_buckets_min_and_max() -> None:
    rng = random.Random(3)
    epochs = list(range(2000))
    spiky = [math.sin(e / 50) + (5 if e == 777 else 0) - (5 if e == 1333 else 0) for e in epochs]
    noisy = [None if rng.random() < 0.1 else rng.gauss(0, 1) for _ in epochs]
    source = charts.Columns(epochs, {"spiky": spiky, "noisy": noisy})
    result = charts.downsample(source, 200)
    assert len(result.epochs) == 200
    buckets = 200 // charts.SLOTS_PER_BUCKET
    for b in range(buckets):
        start, end = b * 2000 // buckets, (b + 1) * 2000 // buckets
        shown = [i for i, e in enumerate(result.epochs) if start <= e < end]
        for name, values in source.series.items():
            raw = [v for v in values[start:end] if v is not None]
            kept = [result.series[name][i] for i in shown if result.series[name][i] is not None]
            assert min(kept) == min(raw) and max(kept) == max(raw), (name, b)
    assert max(result.series["spiky"]) == max(spiky)


def test_chart_data_of_a_thousand_epochs_by_thirty_metrics_is_compact(alice, alice_web) -> None:
    # its speed is measured by bench/first_paint.py, not asserted here
    model_id = create_model(alice)
    upload_epochs(alice, model_id, 1000, 30)
    answer = alice_web.get(f"/models/{model_id}/chart.json", headers=JSON)
    assert answer.status_code == 200
    assert len(answer.content) < 200_000


def post_epochs(client: TestClient, model_id: str, epochs: dict[int, dict[str, float]]) -> None:
    metrics = {str(epoch): json.dumps(values) for epoch, values in epochs.items()}
    ok(client.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))


def model_seq(app: FastAPI, model_id: str) -> int:
    with hub_state(app).db.read() as session:
        return session.scalars(select(ModelRow.seq).where(ModelRow.id == model_id)).one()


CHANGES = [
    {0: {"a": 1.0, "b": 2.0}, 1: {"a": 1.5, "b": 2.5}, 2: {"a": 1.2, "b": 2.2}},
    {3: {"a": 0.9, "b": 1.9}, 4: {"a": 0.8, "b": 1.8}},  # appended
    {5: {"a": 0.7, "c": 3.0}},  # a new metric, one missing
    {1: {"a": 9.0}},  # an epoch the chart holds is rewritten
    {8: {"a": 0.5, "b": 1.5}},  # a gap ...
    {6: {"a": 0.6}, 7: {"b": 1.6}},  # ... filled
    {9: {"a": 0.4, "b": 1.4, "c": 2.0}, 10: {"a": 0.3, "b": 1.3, "c": 1.9}},
]


def test_charts_caught_up_after_each_change_equal_a_read_afresh(app, alice, alice_web) -> None:
    # the columns of the last read are brought up to date (services/dashboard.py COLUMNS); after
    # every kind of change, the chart equals what reading every epoch again gives
    model_id = create_model(alice)
    seq = model_seq(app, model_id)
    db = hub_state(app).db
    empty = alice_web.get(f"/models/{model_id}/chart.json", headers=JSON).json()
    assert empty["epochs"] == [] and empty["version"]["count"] == 0  # held: no epoch yet
    for change in CHANGES:
        post_epochs(alice, model_id, change)
        for first, last, points in (
            (None, None, 500),
            (2, None, 500),
            (1, 6, 500),
            (None, None, 8),
        ):
            query = f"?points={points}" + (f"&first={first}" if first is not None else "")
            query += f"&last={last}" if last is not None else ""
            got = alice_web.get(f"/models/{model_id}/chart.json{query}", headers=JSON).json()
            with db.read() as session:
                fresh = metrics.read_columns(session, seq, first, last)
                version = metrics.metrics_state(session, seq)
            assert got == {**charts.payload(fresh, points), "version": version}, (change, query)


def test_a_new_epoch_reads_only_the_epochs_written_since(app, alice, alice_web) -> None:
    model_id = create_model(alice)
    upload_epochs(alice, model_id, 300, 5)
    assert alice_web.get(f"/models/{model_id}/chart.json", headers=JSON).status_code == 200
    post_epochs(alice, model_id, {300: {"train/loss0": 0.5}})
    statements: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engine = hub_state(app).db.reader
    event.listen(engine, "before_cursor_execute", note)
    try:
        data = alice_web.get(f"/models/{model_id}/chart.json", headers=JSON).json()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert data["total"] == 301 and data["series"]["train/loss0"][-1] == 0.5
    reads = [s for s in statements if re.search(r'metrics\."?values"?', s)]
    assert reads and all("metrics.updated_at >" in s for s in reads), statements


def held(epochs: int, names: str) -> dashboard.HeldColumns:
    columns = charts.Columns(list(range(epochs)), {n: [1.0] * epochs for n in names})
    version = metrics.Version(epochs - 1 if epochs else None, epochs, None)
    return dashboard.HeldColumns(version, columns, 0.0)


def test_the_column_cache_keeps_the_newest_charts_within_its_bound() -> None:
    forty = 40 + dashboard.ENTRY_COST  # 10 epochs x (3 metrics + the epochs)
    cache = dashboard.ColumnCache(max_values=2 * forty + 10)
    for key in ("one", "two", "three"):
        cache.put((key,), held(10, "abc"))
    assert cache.get(("one",)) is None and cache.get(("three",)) is not None
    assert cache.get(("two",)) is not None  # now the most recently used
    cache.put(("four",), held(10, "abc"))
    assert cache.get(("three",)) is None and cache.get(("two",)) is not None
    cache.put(("huge",), held(60, "ab"))  # 180 values: more than the whole cache
    assert cache.get(("huge",)) is None and cache.get(("four",)) is not None
    cache.put(("four",), held(30, "ab"))  # replaced by a bigger one: 90 values
    assert cache.get(("two",)) is None and cache.get(("four",)) is not None


def test_empty_windows_count_against_the_column_cache_too() -> None:
    cache = dashboard.ColumnCache(max_values=10 * dashboard.ENTRY_COST)
    for first in range(11):  # windows a user may ask for, with no epoch in them
        cache.put((first,), held(0, ""))
    assert cache.get((0,)) is None and cache.get((10,)) is not None
    by_count = dashboard.ColumnCache(max_entries=3)
    for first in range(4):
        by_count.put((first,), held(0, ""))
    assert by_count.get((0,)) is None and by_count.get((3,)) is not None


def test_the_version_and_the_columns_come_from_one_snapshot(app, alice, alice_web) -> None:
    # an epoch committed between the version query and the rows query must be in neither
    model_id = create_model(alice)
    post_epochs(alice, model_id, {0: {"a": 1.0}, 1: {"a": 2.0}, 2: {"a": 3.0}})
    url = f"/models/{model_id}/chart.json"
    alice_web.get(url, headers=JSON).raise_for_status()
    seq, db = model_seq(app, model_id), hub_state(app).db
    armed = [True]

    def commit_an_epoch(conn, cursor, statement, parameters, context, executemany) -> None:
        if armed[0] and re.search(r'metrics\."?values"?', statement):
            armed[0] = False
            with db.begin() as other:
                other.execute(
                    insert(MetricRow).values(
                        model_seq=seq, epoch=4, values='{"a": 5.0}', updated_at=utcnow()
                    )
                )

    post_epochs(alice, model_id, {3: {"a": 4.0}})
    event.listen(db.reader, "before_cursor_execute", commit_an_epoch)
    try:
        during = alice_web.get(url, headers=JSON).json()
    finally:
        event.remove(db.reader, "before_cursor_execute", commit_an_epoch)
    assert not armed[0]
    assert (during["epochs"], during["version"]["count"]) == ([0, 1, 2, 3], 4)
    after = alice_web.get(url, headers=JSON).json()
    assert (after["epochs"], after["version"]["count"]) == ([0, 1, 2, 3, 4], 5)
    assert after["series"]["a"] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_epochs_removed_and_written_again_above_are_not_appended(app, alice, alice_web) -> None:
    # a reset removes the epochs; new ones above the old newest must not join the old columns
    model_id = create_model(alice)
    post_epochs(alice, model_id, {0: {"a": 1.0}, 1: {"a": 2.0}, 2: {"a": 3.0}})
    url = f"/models/{model_id}/chart.json"
    assert alice_web.get(url, headers=JSON).json()["epochs"] == [0, 1, 2]
    ok(alice.post("/model-reset", json={"modelId": model_id}))
    post_epochs(alice, model_id, {5: {"a": 6.0}, 6: {"a": 7.0}})
    data = alice_web.get(url, headers=JSON).json()
    assert (data["epochs"], data["series"]) == ([5, 6], {"a": [6.0, 7.0]})


def test_the_columns_are_read_whole_again_after_a_while(app, alice, alice_web, monkeypatch) -> None:
    # a change the version cannot see (decision 0028: a replica whose clock is behind) is made
    # here in SQL under an unchanged version; it shows once the rows were read FULL_READ_EVERY_S
    # ago, at the next request, whether or not an epoch came since
    model_id = create_model(alice)
    post_epochs(alice, model_id, {0: {"a": 1.0}, 1: {"a": 2.0}})
    url = f"/models/{model_id}/chart.json"
    assert alice_web.get(url, headers=JSON).json()["series"] == {"a": [1.0, 2.0]}
    seq = model_seq(app, model_id)
    with hub_state(app).db.write() as session:
        session.execute(
            update(MetricRow)
            .where(MetricRow.model_seq == seq, MetricRow.epoch == 0)
            .values(values='{"a": 5.0}')
        )
    post_epochs(alice, model_id, {2: {"a": 3.0}})
    assert alice_web.get(url, headers=JSON).json()["series"] == {"a": [1.0, 2.0, 3.0]}
    monkeypatch.setattr(dashboard, "FULL_READ_EVERY_S", 0.0)  # the minute has passed
    assert alice_web.get(url, headers=JSON).json()["series"] == {"a": [5.0, 2.0, 3.0]}


def test_compare_overlays_one_metric_of_several_models(alice, bob, alice_web) -> None:
    first, second = create_model(alice, meta={"name": "a"}), create_model(alice, meta={"name": "b"})
    hidden = create_model(bob, meta={"name": "bobs"})
    for model_id, epochs in ((first, (0, 1, 2)), (second, (1, 2, 3))):
        for epoch in epochs:
            metrics = epoch_metrics(epoch, **{"metrics/mAP50-95(B)": epoch / 10, "x/y": 1.0})
            ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))
    query = f"ids={first}&ids={second}&ids={hidden}"
    page = alice_web.get(f"/compare?{query}").text
    assert '<option value="metrics/mAP50-95(B)" selected>' in page and "bobs" not in page
    data = alice_web.get(
        f"/compare/chart.json?{query}&metric=metrics/mAP50-95(B)", headers=JSON
    ).json()
    assert data["epochs"] == [0, 1, 2, 3]
    assert data["series"] == {first: [0.0, 0.1, 0.2, None], second: [None, 0.1, 0.2, 0.3]}
    assert data["names"] == {first: "a", second: "b"}


# --- server-sent events -------------------------------------------------------------------


@pytest.fixture
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "STREAM_LIFETIME_S", 0.35)
    monkeypatch.setattr(live, "POLL_INTERVAL_S", 0.1)


def events(body: str) -> list[tuple[str, dict]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    found = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_the_model_stream_sends_status_epoch_and_metrics(alice, alice_web, short_streams) -> None:
    model_id = create_model(alice, config={"epochs": 5})
    beat(alice, model_id)
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": epoch_metrics(0)}))
    answer = alice_web.get(f"/models/{model_id}/events", headers={"accept": "text/event-stream"})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.startswith("retry: ")
    sent = dict(events(answer.text))
    assert sent["model"]["status"] == "online" and sent["model"]["epoch"] == "1 of 5"
    assert sent["model"]["agents"][0]["name"] == "trainer"
    assert sent["metrics"]["epoch"] == 0 and sent["metrics"]["count"] == 1
    assert sent["weights"] == {"versions": ""}
    assert [name for name, _ in events(answer.text)].count("model") == 1  # only changes follow


def test_the_list_stream_sends_rows_and_the_newest_model(alice, alice_web, short_streams) -> None:
    older = create_model(alice, meta={"name": "older"})
    newer = create_model(alice, meta={"name": "newer"})
    answer = alice_web.get(f"/models/events?ids={older}", headers={"accept": "text/event-stream"})
    sent = events(answer.text)
    assert ("row", older) in [(name, data.get("id")) for name, data in sent]
    assert ("list", {"newest": newer}) in sent


def test_revoking_the_key_ends_an_open_stream(
    app, users, alice, alice_web, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream that outlived its lifetime would end without the signed-out event; the lifetime is
    # long enough that only the revocation can end it, however loaded the machine is.
    monkeypatch.setattr(live, "STREAM_LIFETIME_S", 60.0)
    monkeypatch.setattr(live, "POLL_INTERVAL_S", 0.05)
    # Revoke once the stream has sent a snapshot, not after a fixed delay: on a loaded machine a
    # key revoked before the request began turns it into a redirect to the sign-in page.
    streaming, real_guarded = threading.Event(), live._guarded

    def guarded(*args: Any) -> live.Snapshot:
        snapshot = real_guarded(*args)
        streaming.set()
        return snapshot

    monkeypatch.setattr(live, "_guarded", guarded)

    def revoke_while_streaming() -> None:
        if streaming.wait(timeout=30):
            revoke_key(app, users.alice)

    revoker = threading.Thread(target=revoke_while_streaming)
    model_id = create_model(alice)
    revoker.start()
    answer = alice_web.get(f"/models/{model_id}/events", headers={"accept": "text/event-stream"})
    revoker.join()
    assert events(answer.text)[0][0] != "signed-out"  # the stream ran before the revocation
    assert events(answer.text)[-1] == ("signed-out", {"location": "/login"})
    assert alice_web.get("/models", follow_redirects=False).status_code == 303
