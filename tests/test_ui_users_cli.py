"""`argtree users add/passwd`: passwords from a prompt or --password-stdin, never needed on the command line;
a password change ends the account's web sessions; the SQLite file is created private (0600)."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.store import Annotator, SessionEnded, check_session, create_session, session_scope
from argtree.store.testing import dispose, fast_password_hashing


@pytest.fixture
def home(tmp_path, monkeypatch):
    fast_password_hashing()
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'argtree.db'}"
    yield tmp_path
    dispose(url)


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_database_file_is_created_owner_only(home):
    assert run("db", "upgrade").exit_code == 0
    for f in home.glob("argtree.db*"):
        if not f.name.endswith(".writer-lock"):  # the lock file is empty
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_add_and_passwd_read_the_password_without_putting_it_on_the_command_line(home):
    assert run("db", "upgrade").exit_code == 0
    r = run("users", "add", "alice", "--password-stdin", input="first-password\n")
    assert r.exit_code == 0 and "added annotator 'alice'" in r.output and "first-password" not in r.output
    r = run("users", "add", "bob", input="prompted-pass\nprompted-pass\n")  # hidden prompt, asked twice
    assert r.exit_code == 0, r.output
    r = run("users", "add", "carol", "--password-stdin", input="short\n")
    assert r.exit_code == 2 and "at least 8" in r.output
    r = run("users", "add", "dave", "--password-stdin", input="")
    assert r.exit_code == 2 and "read nothing" in r.output
    from argtree.store import verify_password

    with session_scope() as s:
        assert verify_password(s, "alice", "first-password") is not None
        assert verify_password(s, "bob", "prompted-pass") is not None
        assert s.query(Annotator).filter_by(name="carol").count() == 0
        token = create_session(s, s.query(Annotator).filter_by(name="alice").one().id)
    r = run("users", "passwd", "alice", "--password-stdin", input="second-password\r\n")
    assert r.exit_code == 0 and "sessions are ended" in r.output
    with session_scope() as s:
        assert verify_password(s, "alice", "second-password") is not None  # CRLF stripped, nothing else
        with pytest.raises(SessionEnded) as ended:
            check_session(s, token)
        assert ended.value.why == "password"


def test_the_old_password_option_still_works_with_a_warning(home):
    assert run("db", "upgrade").exit_code == 0
    r = CliRunner().invoke(main, ["users", "add", "erin", "--password", "visible-pass"])
    assert r.exit_code == 0 and "warning: --password shows the password" in r.output
    assert "--password-stdin" in run("users", "add", "--help").output
    assert "--password " not in run("users", "add", "--help").output.replace("--password-stdin", "")
