"""Signed download tokens: valid for one object, label and content, until they expire."""

import time

from trainhub.server.signing import create_token, is_valid_token, safe_name

SECRET = b"s" * 32
SHA = "ab" * 32


def test_a_fresh_token_is_valid_for_exactly_what_it_signed() -> None:
    token = create_token(SECRET, "m" * 20, "best.pt", SHA, ttl_s=60)
    assert is_valid_token(SECRET, token, "m" * 20, "best.pt", SHA)
    assert not is_valid_token(SECRET, token, "n" * 20, "best.pt", SHA)
    assert not is_valid_token(SECRET, token, "m" * 20, "last.pt", SHA)
    assert not is_valid_token(SECRET, token, "m" * 20, "best.pt", "cd" * 32)
    assert not is_valid_token(b"other" * 8, token, "m" * 20, "best.pt", SHA)


def test_an_edited_or_expired_token_is_refused() -> None:
    token = create_token(SECRET, "m" * 20, "best.pt", SHA, ttl_s=60)
    expires, _, signature = token.partition(".")
    later = f"{int(expires) + 3600}.{signature}"
    assert not is_valid_token(SECRET, later, "m" * 20, "best.pt", SHA)
    expired = create_token(SECRET, "m" * 20, "best.pt", SHA, ttl_s=-1)
    assert int(expired.partition(".")[0]) < time.time()
    assert not is_valid_token(SECRET, expired, "m" * 20, "best.pt", SHA)
    assert not is_valid_token(SECRET, "garbage", "m" * 20, "best.pt", SHA)


def test_safe_names_keep_only_plain_characters() -> None:
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("my data set (v2)") == "my_data_set_v2"
    assert safe_name("...") == "file"
