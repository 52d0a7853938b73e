"""Signed download tokens: valid for one object, label, content and reader, until they expire."""

import time

from trainhub.server.signing import ANYONE, Grant, create_token, safe_name, verify_token

SECRET = b"s" * 32
SHA = "ab" * 32
MODEL = "m" * 20
READER = "r" * 20


def test_a_fresh_token_is_valid_for_exactly_what_it_signed() -> None:
    token = create_token(SECRET, MODEL, "best.pt", SHA, ttl_s=60, reader=READER)
    assert verify_token(SECRET, token, MODEL, "best.pt", SHA) == Grant(READER)
    assert verify_token(SECRET, token, "n" * 20, "best.pt", SHA) is None
    assert verify_token(SECRET, token, MODEL, "last.pt", SHA) is None
    assert verify_token(SECRET, token, MODEL, "best.pt", "cd" * 32) is None
    assert verify_token(b"other" * 8, token, MODEL, "best.pt", SHA) is None


def test_a_token_made_for_nobody_in_particular_grants_anyone() -> None:
    token = create_token(SECRET, MODEL, "best.pt", SHA, ttl_s=60)
    assert f".{ANYONE}." in token
    assert verify_token(SECRET, token, MODEL, "best.pt", SHA) == Grant(None)


def test_an_edited_or_expired_token_is_refused() -> None:
    token = create_token(SECRET, MODEL, "best.pt", SHA, ttl_s=60, reader=READER)
    expires, reader, signature = token.split(".")
    later = f"{int(expires) + 3600}.{reader}.{signature}"
    assert verify_token(SECRET, later, MODEL, "best.pt", SHA) is None
    someone_else = f"{expires}.{'x' * 20}.{signature}"
    assert verify_token(SECRET, someone_else, MODEL, "best.pt", SHA) is None
    anyone = f"{expires}.{ANYONE}.{signature}"
    assert verify_token(SECRET, anyone, MODEL, "best.pt", SHA) is None
    expired = create_token(SECRET, MODEL, "best.pt", SHA, ttl_s=-1)
    assert int(expired.partition(".")[0]) < time.time()
    assert verify_token(SECRET, expired, MODEL, "best.pt", SHA) is None
    assert verify_token(SECRET, "garbage", MODEL, "best.pt", SHA) is None


def test_an_expiry_in_non_ascii_digits_is_refused_not_a_crash() -> None:
    token = create_token(SECRET, MODEL, "best.pt", SHA, ttl_s=60)
    _, rest = token.split(".", 1)
    for digits in ("²²²²²²²²²²", "٣٣٣٣٣٣٣٣٣٣", "\uff19" * 10):
        assert verify_token(SECRET, f"{digits}.{rest}", MODEL, "best.pt", SHA) is None


def test_safe_names_keep_only_plain_characters() -> None:
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("my data set (v2)") == "my_data_set_v2"
    assert safe_name("...") == "file"
