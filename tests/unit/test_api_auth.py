"""The Prefect API's password that `changeflow up` makes and keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from changeflow.up import AuthFileError, api_auth_string


@pytest.fixture(autouse=True)
def no_auth_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_SERVER_API_AUTH_STRING", raising=False)


def test_the_first_start_makes_a_password_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "var" / "prefect-auth"
    made = api_auth_string(path)
    user, _, password = made.partition(":")
    assert user == "changeflow" and len(password) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert api_auth_string(path) == made  # kept for the next start


def test_the_environment_wins_and_nothing_is_written(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "ops:elsewhere")
    assert api_auth_string(tmp_path / "prefect-auth") == "ops:elsewhere"
    assert not (tmp_path / "prefect-auth").exists()


@pytest.mark.parametrize(("text", "mode", "message"), [
    ("changeflow:secret\n", 0o644, "has mode 644; make it readable by its owner only: "
                                   "chmod 600"),
    ("no colon here\n", 0o600, "must hold one line user:password"),
    (":nouser\n", 0o600, "must hold one line user:password"),
])
def test_a_kept_password_that_cannot_be_used_is_named(tmp_path: Path, text: str, mode: int,
                                                      message: str) -> None:
    path = tmp_path / "prefect-auth"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(AuthFileError, match=message):
        api_auth_string(path)
