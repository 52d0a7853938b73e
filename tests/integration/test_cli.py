"""The operator CLI: users, keys and db commands against a real database."""

import re
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.testclient import TestClient
from trainhub.cli import app as cli_app
from trainhub.protocol.ids import is_api_key
from trainhub.server.app import create_app
from trainhub.server.state import hub_state

runner = CliRunner()


def invoke(*args: str, data_dir: Path) -> str:
    """Run an operator command on `data_dir`; return its stdout (stderr names the database)."""
    result = runner.invoke(cli_app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_users_create_prints_a_working_key_on_the_last_line(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    where = ["--data-dir", str(data_dir), "--database-url", database_url]
    result = runner.invoke(cli_app, ["users", "create", "carol", "--init", *where])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert is_api_key(key)
    app = create_app(make_settings(tmp_path, database_url))
    with TestClient(app) as client:
        answer = client.post("/v1/auth", headers={"x-api-key": key}).json()
    hub_state(app).db.dispose()
    assert answer["success"] is True and answer["data"]["name"] == "carol"


def test_a_new_key_is_shown_in_both_spellings_and_each_says_which_client_takes_it(
    tmp_path: Path, database_url: str
) -> None:
    where = ["--data-dir", str(tmp_path / "data"), "--database-url", database_url]
    invoke_all = runner.invoke(cli_app, ["users", "create", "gina", "--init", *where])
    assert invoke_all.exit_code == 0, invoke_all.output
    result = runner.invoke(cli_app, ["keys", "create", "--user", "gina", *where])
    lines = result.stdout.strip().splitlines()
    hub_key = lines[-1]
    [platform_line] = [line for line in lines if "ultralytics 8.4" in line]
    platform_key = platform_line.split()[-1]
    assert re.fullmatch(r"ul[0-9a-f]{40}", hub_key)
    assert platform_key == "ul_" + hub_key[2:]
    assert "yolo login" in platform_line and "ULTRALYTICS_API_KEY" in platform_line
    assert any("hub-sdk" in line and "8.3" in line for line in lines)
    app = create_app(make_settings(tmp_path, database_url))
    with TestClient(app) as client:
        for key in (hub_key, platform_key):
            answer = client.get("/api/account/summary", headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and answer.json()["username"] == "gina"
    hub_state(app).db.dispose()


def test_a_second_user_with_the_same_name_is_refused(tmp_path: Path) -> None:
    invoke("users", "create", "dave", "--init", data_dir=tmp_path)
    result = runner.invoke(cli_app, ["users", "create", "dave", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_keys_are_created_listed_by_prefix_and_revoked(tmp_path: Path) -> None:
    first = invoke("users", "create", "erin", "--admin", "--init", data_dir=tmp_path)
    first = first.strip().splitlines()[-1]
    printed = invoke("keys", "create", "--user", "erin", "--name", "laptop", data_dir=tmp_path)
    second = printed.strip().splitlines()[-1]
    assert is_api_key(second) and second != first
    listing = invoke("keys", "list", "--user", "erin", data_dir=tmp_path)
    assert listing.splitlines()[0].split() == ["ID", "PREFIX", "STATE", "LAST", "USED", "NAME"]
    assert second[:8] in listing and second not in listing and "laptop" in listing
    invoke("keys", "revoke", second[:8], "--user", "erin", data_dir=tmp_path)
    assert "revoked" in invoke("keys", "list", "--user", "erin", data_dir=tmp_path)
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'trainhub.db'}"))
    with TestClient(app) as client:
        assert client.post("/v1/auth", headers={"x-api-key": second}).status_code == 401
        assert client.post("/v1/auth", headers={"x-api-key": first}).status_code == 200
    hub_state(app).db.dispose()


def test_commands_about_a_missing_user_fail_with_a_hint(tmp_path: Path) -> None:
    invoke("db", "upgrade", "--init", data_dir=tmp_path)
    result = runner.invoke(
        cli_app, ["keys", "list", "--user", "nobody", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "trainhub users create nobody" in result.output


def test_db_upgrade_creates_the_database_only_with_init(tmp_path: Path) -> None:
    refused = runner.invoke(cli_app, ["db", "upgrade", "--data-dir", str(tmp_path / "new")])
    assert refused.exit_code == 1 and "pass --init" in refused.output
    assert not (tmp_path / "new").exists()
    output = invoke("db", "upgrade", "--init", data_dir=tmp_path / "new")
    assert "up to date" in output and (tmp_path / "new" / "trainhub.db").exists()
    assert "up to date" in invoke("db", "upgrade", data_dir=tmp_path / "new")


def test_users_list_shows_admins(tmp_path: Path) -> None:
    invoke("users", "create", "frank", "--admin", "--init", data_dir=tmp_path)
    listing = invoke("users", "list", data_dir=tmp_path).splitlines()
    assert listing[0].split() == ["ID", "NAME"]
    assert listing[1].endswith("  frank  (admin)")
