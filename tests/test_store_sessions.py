"""Web sessions, login limits and the web app's store functions (SQLite, and PostgreSQL when reachable).

Time is passed in (``now=``): no sleeps, no wall-clock assertions.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from argtree.store import (Label, LoginThrottle, SessionEnded, StoreError, WebSession, add_annotator,
                           attempt_login, check_session, create_session, save_tree, session_scope, set_annotator,
                           set_password, utcnow)
from argtree.store import webui
from argtree.store.sessions import BAD_LOGIN, ThrottlePolicy, login_state, revoke_session
from argtree.store.testing import fast_password_hashing
from store_fixtures import pg_module, url  # noqa: F401
from argtree.tree import ArgumentTree, Node

fast_password_hashing()
POLICY = ThrottlePolicy(free=3, client_free=3, base_delay=1.0, max_delay=60.0, lock_after=10, client_lock_after=30,
                        lock_seconds=900.0, window_seconds=900.0)




@pytest.fixture
def people(url):
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password", admin=(n == "root")).id for n in ("alice", "bob", "root")}
        save_tree(s, ArgumentTree([Node("q", "Is it so?", prior=0.5),
                                   Node("a", "A premise holds.", parent="q", p_if_true=0.9, p_if_false=0.2),
                                   Node("b", "Another premise holds.", parent="q", p_if_true=0.3, p_if_false=0.7)]))
    return ids


def login(url, name, password, client="10.0.0.1", now=None):
    with session_scope(url) as s:
        return attempt_login(s, name, password, client=client, now=now, policy=POLICY)


def test_login_creates_a_hashed_session_and_one_message_for_every_failure(url, people):
    ok = login(url, "alice", "alice-password")
    assert ok.ok and ok.token and ok.annotator_id == people["alice"]
    with session_scope(url) as s:
        row = s.scalar(select(WebSession).where(WebSession.annotator_id == people["alice"]))
        assert row.token_hash != ok.token and len(row.token_hash) == 64  # only a hash is stored
        assert row.revoked_at is None and row.expires_at > row.created_at
        assert check_session(s, ok.token).name == "alice"
    wrong = login(url, "alice", "not-her-password")
    unknown = login(url, "nobody", "alice-password")
    assert not wrong.ok and not unknown.ok
    assert wrong.message == unknown.message == BAD_LOGIN
    assert login(url, "", "x").message == "Enter your name and password."


def test_sessions_end_at_logout_password_change_and_deactivation(url, people):
    tokens = {n: login(url, n, f"{n}-password").token for n in ("alice", "bob")}
    second = login(url, "alice", "alice-password").token
    with session_scope(url) as s:
        assert revoke_session(s, tokens["alice"]) is True
        assert revoke_session(s, tokens["alice"]) is False
    with session_scope(url) as s:
        with pytest.raises(SessionEnded) as ended:
            check_session(s, tokens["alice"])
        assert ended.value.why == "logout"
        assert check_session(s, second).name == "alice"  # logging out one session leaves the other
        set_password(s, "alice", "a-new-password")
    with session_scope(url) as s:
        with pytest.raises(SessionEnded, match="password of this account was changed") as ended:
            check_session(s, second)
        assert ended.value.why == "password"
        set_annotator(s, "bob", active=False)
    with session_scope(url) as s:
        with pytest.raises(SessionEnded, match="deactivated") as ended:
            check_session(s, tokens["bob"])
        assert ended.value.why == "deactivated"
        with pytest.raises(SessionEnded) as ended:
            check_session(s, "not-a-token")
        assert ended.value.why == "unknown"
    assert login(url, "bob", "bob-password").message == "This account is deactivated; ask an admin."
    assert not login(url, "bob", "bob-password").ok


def test_expiry_is_checked_against_the_time_given(url, people):
    now = utcnow()
    with session_scope(url) as s:
        token = create_session(s, people["alice"], hours=1, now=now)
    with session_scope(url) as s:
        assert check_session(s, token, now=now + timedelta(minutes=59)).name == "alice"
        with pytest.raises(SessionEnded) as ended:
            check_session(s, token, now=now + timedelta(minutes=61))
        assert ended.value.why == "expired"


def test_wrong_passwords_are_slowed_then_locked_and_the_state_is_stored(url, people):
    t0 = utcnow()
    for i in range(3):  # free
        r = login(url, "alice", "wrong-password", now=t0)
        assert r.message == BAD_LOGIN and r.retry_after is None
    r = login(url, "alice", "wrong-password", now=t0)  # the 4th: slowed from now on
    assert not r.ok and r.retry_after == pytest.approx(1.0) and not r.locked
    with session_scope(url) as s:
        state = login_state(s, "alice", "10.0.0.1")
        assert state["account"].failures == 4 and state["client"].failures == 4
        assert state["account"].not_before - t0 == timedelta(seconds=1)
        assert state["account"].locked_until is None
    # The right password during the delay is refused unchecked (and counts).
    r = login(url, "alice", "alice-password", now=t0)
    assert not r.ok and r.token is None and "wait" in r.message
    with session_scope(url) as s:
        assert login_state(s, "alice")["account"].not_before - t0 == timedelta(seconds=2)  # doubled
    for _ in range(4):  # rapid attempts: 6th..9th failure
        assert not login(url, "alice", "wrong-password", now=t0).locked
    r = login(url, "alice", "wrong-password", now=t0)  # the 10th: locked
    assert r.locked and "locked for 15 minutes" in r.message
    with session_scope(url) as s:
        row = login_state(s, "alice")["account"]
        assert row.failures == 10 and row.locked_until - t0 == timedelta(seconds=900)
    # Still locked just before the end, even with the right password; open after it.
    assert login(url, "alice", "alice-password", now=t0 + timedelta(seconds=899)).locked
    later = t0 + timedelta(seconds=899 + 901)
    ok = login(url, "alice", "alice-password", client="10.0.0.2", now=later)
    assert ok.ok
    with session_scope(url) as s:
        assert login_state(s, "alice")["account"] is None  # a success clears its name's row


def test_unknown_names_are_limited_exactly_like_real_ones(url, people):
    t0 = utcnow()
    real = [login(url, "alice", "wrong-password", client=None, now=t0).message for _ in range(6)]
    fake = [login(url, "nobody", "wrong-password", client=None, now=t0).message for _ in range(6)]
    assert real == fake


def test_one_client_is_limited_across_names(url, people):
    t0 = utcnow()
    policy = ThrottlePolicy(free=100, client_free=100, lock_after=100, client_lock_after=5)
    with session_scope(url) as s:
        for i in range(5):
            attempt_login(s, f"guess{i}", "wrong-password", client="10.9.9.9", now=t0, policy=policy)
    with session_scope(url) as s:
        r = attempt_login(s, "alice", "alice-password", client="10.9.9.9", now=t0, policy=policy)
        assert r.locked and not r.ok
        assert s.get(LoginThrottle, ("client", "10.9.9.9")).locked_until is not None
        assert attempt_login(s, "alice", "alice-password", client="10.1.1.1", now=t0, policy=policy).ok


def test_every_web_write_checks_the_session_in_its_transaction(url, people):
    alice = login(url, "alice", "alice-password").token
    root = login(url, "root", "root-password").token
    with session_scope(url) as s:
        q, numbers = webui.question(s, alice)
        assert numbers.belief is not None
        label_id = webui.answer(s, alice, q.proposition_id, "true", request_id="r1")
        assert s.get(Label, label_id).annotator_id == people["alice"]
    with session_scope(url) as s:
        set_password(s, "alice", "changed-password")
    with session_scope(url) as s:
        nxt, _ = webui.question(s, root)
        with pytest.raises(SessionEnded):
            webui.answer(s, alice, nxt.proposition_id, "false", request_id="r2")
        with pytest.raises(SessionEnded):
            webui.undo(s, alice)
    with session_scope(url) as s:
        assert s.scalar(select(Label.id).where(Label.request_id == "r2")) is None
        assert [lab.kind for lab in s.scalars(select(Label).where(Label.annotator_id == people["alice"]))] == ["true"]
    # Admin writes need an admin session, read now.
    bob = login(url, "bob", "bob-password").token
    with session_scope(url) as s:
        with pytest.raises(StoreError, match="admin"):
            webui.set_user(s, bob, "alice", active=False)
        with pytest.raises(StoreError, match="admin"):
            webui.users(s, bob)
        webui.set_user(s, root, "bob", admin=True)
    with session_scope(url) as s:
        assert {u["name"] for u in webui.users(s, bob)} >= {"alice", "bob", "root"}  # the new role counts at once
        webui.set_user(s, root, "bob", active=False)
    with session_scope(url) as s:
        with pytest.raises(SessionEnded):
            webui.users(s, bob)


def test_tree_list_and_view_carry_the_three_root_numbers(url, people):
    from argtree.store import Tree

    root = login(url, "root", "root-password").token
    with session_scope(url) as s:
        (listing,) = webui.tree_list(s, root)
        assert listing.root.belief is not None and listing.root.direct is None
        t = s.get(Tree, listing.id)
        t.direct_answer, t.root_labels_only = 0.25, 0.5
    with session_scope(url) as s:
        view = webui.tree_view(s, root, listing.id)
        assert (view.root.direct, view.root.labels_only) == (0.25, 0.5)
        assert view.history and set(view.history[0]) >= {"belief", "direct", "labels_only", "cause"}
        alice = create_session(s, people["alice"])
        assert webui.tree_list(s, alice) == []  # annotators see the trees they answered in


def test_logout_gives_the_question_back(url, people):
    alice = login(url, "alice", "alice-password").token
    bob = login(url, "bob", "bob-password").token
    with session_scope(url) as s:
        held, _ = webui.question(s, alice)
    with session_scope(url) as s:
        assert webui.logout(s, alice) is True
    with session_scope(url) as s:
        got, _ = webui.question(s, bob)
        assert got.proposition_id == held.proposition_id


def test_a_locked_client_adds_no_rows_for_new_names(url, people):
    t0 = utcnow()
    policy = ThrottlePolicy(free=100, client_free=100, lock_after=100, client_lock_after=3)
    with session_scope(url) as s:
        for i in range(3):
            attempt_login(s, f"spray{i}", "wrong-password", client="10.7.7.7", now=t0, policy=policy)
    with session_scope(url) as s:
        before = s.query(LoginThrottle).count()
        for i in range(3, 50):
            assert attempt_login(s, f"spray{i}", "wrong-password", client="10.7.7.7", now=t0, policy=policy).locked
        assert s.query(LoginThrottle).count() == before
        assert s.get(LoginThrottle, ("client", "10.7.7.7")).failures == 50


def test_stale_failures_are_forgotten(url, people):
    t0 = utcnow()
    for _ in range(3):
        login(url, "alice", "wrong-password", client=None, now=t0)
    later = t0 + timedelta(seconds=POLICY.window_seconds + 1)
    assert login(url, "bob", "bob-password", client=None, now=later).ok  # any attempt prunes stale rows
    with session_scope(url) as s:
        assert login_state(s, "alice")["account"] is None
    for _ in range(3):
        login(url, "alice", "wrong-password", client=None, now=later)
    much_later = later + timedelta(seconds=POLICY.window_seconds + 1)
    assert login(url, "alice", "wrong-password", client=None, now=much_later).message == BAD_LOGIN  # counts afresh
    with session_scope(url) as s:
        assert login_state(s, "alice")["account"].failures == 1


def test_an_admin_ends_another_accounts_sessions(url, people):
    root = login(url, "root", "root-password").token
    bob = [login(url, "bob", "bob-password").token for _ in range(2)]
    alice = login(url, "alice", "alice-password").token
    with session_scope(url) as s:
        with pytest.raises(StoreError, match="admin"):
            webui.end_sessions(s, alice, "bob")
        with pytest.raises(StoreError, match="Log out"):
            webui.end_sessions(s, root, "root")
        assert webui.end_sessions(s, root, "bob") == 2
    with session_scope(url) as s:
        for token in bob:
            with pytest.raises(SessionEnded) as ended:
                check_session(s, token)
            assert ended.value.why == "admin"
        assert check_session(s, alice).name == "alice"


def test_every_attempt_costs_exactly_one_password_hash_check(url, people, monkeypatch):
    """Timing cannot tell unknown, wrong, deactivated and right apart: each is one argon2 verification."""
    from argtree.store import accounts

    real = accounts._hasher()
    calls = []

    class Counting:
        def verify(self, hash_, password):
            calls.append(hash_)
            return real.verify(hash_, password)

        def __getattr__(self, attr):
            return getattr(real, attr)

    monkeypatch.setattr(accounts, "HASHER", Counting())
    with session_scope(url) as s:
        set_annotator(s, "bob", active=False)
    for name, password in (("nobody", "whatever-123"), ("alice", "wrong-password"), ("bob", "bob-password"),
                           ("bob", "wrong-password"), ("alice", "alice-password")):
        calls.clear()
        login(url, name, password, client=None)
        assert len(calls) == 1, (name, password, calls)
