"""The pages' one door to the database: ``argtree.store.webui`` functions, one transaction each.

Every call passes the browser's session token; the store checks it in the same transaction
(writes lock it), so an ended session raises ``SessionEnded`` and nothing is stored.  The ways a
database can fail become ``Unavailable`` with one readable line, so a page can say "the database
is down" instead of showing a traceback.  ``StoreError`` (bad input the user can fix, or an
ended session) passes through unchanged.  No SQL here: it lives in ``argtree/store/``.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any, Callable, TypeVar

from argtree.store.sessions import LoginResult, SessionEnded
from argtree.store.webui import KINDS, Account, Agreement, RootNumbers, TreeListing, TreeView, agreement

T = TypeVar("T")

__all__ = ["Unavailable", "SessionEnded", "LoginResult", "KINDS", "Account", "Agreement", "RootNumbers",
           "TreeListing", "TreeView", "agreement", "call", "login", "account", "logout", "next_question", "stats",
           "answer", "undo", "trees", "tree", "edit_node", "node_labels", "human_labels", "dataset", "dump_zip",
           "users", "add_user", "set_user", "end_sessions", "runs", "database_name", "reliabilities",
           "estimate_reliability", "gold_answer", "set_gold", "queue_settings", "set_queue",
           "flags", "resolve_flag"]


class Unavailable(RuntimeError):
    """The database cannot be used right now (down, unmigrated, locked); the message says which."""


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def call(fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
    """``fn(session, *args, **kwargs)`` in one transaction; database failures become ``Unavailable``."""
    from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

    from argtree.store import SchemaError, StoreError, database_url, session_scope
    from argtree.store.db import redact

    try:
        with session_scope(readonly=readonly) as session:
            return fn(session, *args, **kwargs)
    except StoreError:
        raise
    except SchemaError as err:
        raise Unavailable(str(err)) from None
    except (OperationalError, DBAPIError) as err:
        raise Unavailable(f"the database {redact(database_url())} is not reachable: {_first_line(err)}") from None
    except SQLAlchemyError as err:
        raise Unavailable(f"database error: {_first_line(err)}") from None


def database_name() -> str:
    from argtree.store import database_url
    from argtree.store.db import redact

    return redact(database_url())


# -- sessions -------------------------------------------------------------

def login(name: str, password: str, client: str | None) -> LoginResult:
    """One login attempt (limited per name and per client; see ``argtree.store.sessions``)."""
    from argtree.store.sessions import attempt_login

    return call(attempt_login, name, password, client=client)


def account(token: str | None) -> Account:
    """The account of a live session; ``SessionEnded`` otherwise."""
    from argtree.store import webui

    return call(webui.account, token, readonly=True)


def logout(token: str | None) -> bool:
    from argtree.store import webui

    return call(webui.logout, token)


# -- answering ------------------------------------------------------------

def next_question(token: str | None):
    """(the question leased to this session's annotator, its tree's RootNumbers), or None when none is left."""
    from argtree.store import webui

    return call(webui.question, token)


def stats(token: str | None):
    from argtree.store import webui

    return call(webui.stats, token, readonly=True)


def answer(token: str | None, proposition_id: int, kind: str, *, probability: float | None = None,
           rewrite: str | None = None, comment: str | None = None, seconds: float | None = None,
           request_id: str | None = None, then_next: bool = False):
    """Store one answer of ``kind`` (see KINDS): the label id, or with ``then_next`` (label id, next question)."""
    from argtree.store import webui

    out = call(webui.answer, token, proposition_id, kind, probability=probability, rewrite=rewrite,
               comment=comment, seconds=seconds, request_id=request_id or uuid.uuid4().hex, then_next=then_next)
    _reestimate_if_due(token)
    return out


def _reestimate_if_due(token: str | None) -> None:
    """After an answer has committed: every ``reliability.every`` answers, re-estimate the annotators'
    reliabilities (issue 13) in a transaction of its own.  The answer is saved whatever happens here."""
    from argtree.store import StoreError, webui

    try:
        if call(webui.reliability_due, token, readonly=True):
            call(webui.reliability_if_due, token)
    except (StoreError, Unavailable):
        pass


def undo(token: str | None) -> str | None:
    from argtree.store import webui

    return call(webui.undo, token)


# -- trees ----------------------------------------------------------------

def trees(token: str | None, search: str | None, limit: int = 200) -> list[TreeListing]:
    from argtree.store import webui

    return call(webui.tree_list, token, search or None, limit, readonly=True)


def tree(token: str | None, tree_id: int) -> TreeView:
    from argtree.store import webui

    return call(webui.tree_view, token, tree_id, readonly=True)


def edit_node(token: str | None, node_id: int, **numbers: float | None) -> None:
    from argtree.store import webui

    call(webui.edit_node, token, node_id, **numbers)


def node_labels(token: str | None, proposition_id: int) -> list[dict]:
    from argtree.store import webui

    return call(webui.node_labels, token, proposition_id, readonly=True)


# -- agreement and export (admin) ----------------------------------------

def human_labels(token: str | None) -> list[dict]:
    from argtree.store import webui

    return call(webui.human_labels, token, readonly=True)


def labeled_trees(token: str | None, only_labeled: bool = True) -> list:
    from argtree.store import webui

    return call(webui.labeled_trees, token, only_labeled, readonly=True)


def dataset(token: str | None, kind: str, fmt: str, split: float | None) -> dict[str, bytes]:
    """{file name: JSONL bytes} for the fine-tuning export (``argtree.datasets.build``), plus its card."""
    from argtree.datasets import build

    result = build(labeled_trees(token), kind, fmt, split)
    files = {f"{kind}-{fmt}{'' if name == 'all' else '.' + name}.jsonl":
             "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in recs).encode()
             for name, recs in result["splits"].items()}
    files[f"{kind}-{fmt}.card.json"] = json.dumps(result["card"], indent=1, ensure_ascii=False, default=str).encode()
    return files


def dump_zip(token: str | None, only_labeled: bool = False) -> tuple[bytes, int]:
    """A zip of argtree/1 files, one per tree (labels as evidence); and how many trees it holds."""
    from argtree.io import dumps

    buf = io.BytesIO()
    trees_ = labeled_trees(token, only_labeled)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for lt in trees_:
            zf.writestr(f"{lt.source.replace('db:tree/', 'tree-')}.json", dumps(lt.tree, lt.evidence))
    return buf.getvalue(), len(trees_)


# -- admin ----------------------------------------------------------------

def users(token: str | None) -> list[dict]:
    from argtree.store import webui

    return call(webui.users, token, readonly=True)


def add_user(token: str | None, name: str, password: str, admin: bool) -> None:
    from argtree.store import webui

    call(webui.add_user, token, name, password, admin)


def set_user(token: str | None, name: str, **changes: Any) -> None:
    from argtree.store import webui

    call(webui.set_user, token, name, **changes)


def end_sessions(token: str | None, name: str) -> int:
    from argtree.store import webui

    return call(webui.end_sessions, token, name)


def reliabilities(token: str | None) -> list[dict]:
    from argtree.store import webui

    return call(webui.reliabilities, token, readonly=True)


def estimate_reliability(token: str | None) -> dict:
    from argtree.store import webui

    return call(webui.estimate_reliability, token)


def gold_answer(token: str | None, proposition_id: int) -> bool | None:
    from argtree.store import webui

    return call(webui.gold_answer, token, proposition_id, readonly=True)


def set_gold(token: str | None, proposition_id: int, value: bool | None) -> None:
    from argtree.store import webui

    call(webui.set_gold, token, proposition_id, value)


def queue_settings(token: str | None) -> dict:
    from argtree.store import webui

    return call(webui.queue_settings_view, token, readonly=True)


def set_queue(token: str | None, **changes: Any) -> dict:
    from argtree.store import webui

    return call(webui.set_queue, token, **changes)


def flags(token: str | None, include_resolved: bool = False) -> list:
    from argtree.store import webui

    return call(webui.flags, token, include_resolved, readonly=True)


def resolve_flag(token: str | None, key: str, note: str | None = None) -> None:
    from argtree.store import webui

    call(webui.resolve_flag, token, key, note)


def runs(token: str | None, limit: int = 50) -> list[dict]:
    from argtree.store import webui

    return call(webui.loop_runs, token, limit, readonly=True)


# -- co-authoring and assignment (issue 13) --------------------------------

def add_premise(token: str | None, parent_node_id: int, text: str, *, p_if_true: float | None = None,
                p_if_false: float | None = None, stance: str | None = None, answer: str | None = None,
                request_id: str | None = None, elicit: bool = False, backend: Any = None):
    """Add a premise under a node (any annotator); ``answer`` 'true'/'false' also labels it, in the same
    transaction.  The ``coauthor.EditResult`` (root before and after).

    ``elicit``: the model elicits the numbers instead (``argtree.coauthor.elicit_premise``, as
    ``argtree tree add-premise --backend`` does), with ``backend`` or the app's (``model_backend``); the
    node records them as the model's (its credence, what it said, which model) and the edit as the
    annotator's.  The model runs between two transactions (reading the claim, then the write), never
    inside one."""
    from argtree.store import coauthor

    rid = request_id or uuid.uuid4().hex
    if not elicit:
        return call(coauthor.web_add_premise, token, parent_node_id, text, p_if_true=p_if_true,
                    p_if_false=p_if_false, stance=stance, answer=answer, request_id=rid)
    from argtree.coauthor import elicit_premise
    from argtree.store.text import check_text

    text = check_text(text, "text")   # refused before the model runs
    claim = call(coauthor.web_node_claim, token, parent_node_id, readonly=True)
    numbers = elicit_premise(backend if backend is not None else model_backend(), claim, text)
    return call(coauthor.web_add_premise, token, parent_node_id, text, stance=stance, answer=answer, request_id=rid,
                **numbers)


class ModelUnavailable(RuntimeError):
    """The app's model cannot be loaded (missing extra, bad name, no weights); the message says which."""


_backends: dict = {}


def model_backend():
    """The model the app lets elicit a premise's numbers: ``argtree ui --backend/--model`` (environment
    ARGTREE_UI_BACKEND / ARGTREE_UI_MODEL), by default the CLI's default, the bundled local model.  Loaded
    once per server process, on first use."""
    import os

    kind = os.environ.get("ARGTREE_UI_BACKEND") or "local"
    model = os.environ.get("ARGTREE_UI_MODEL") or None
    timeout = os.environ.get("ARGTREE_UI_TIMEOUT")        # argtree ui --timeout/--concurrency (openai)
    concurrency = os.environ.get("ARGTREE_UI_CONCURRENCY")
    key = (kind, model, timeout, concurrency)
    if key not in _backends:
        from argtree.llm import open_backend

        try:
            _backends[key] = open_backend(kind, model, timeout=float(timeout) if timeout else None,
                                          concurrency=int(concurrency) if concurrency else None)
        except (ValueError, RuntimeError, OSError, ImportError) as err:
            raise ModelUnavailable(f"the model ({kind}{', ' + model if model else ''}) cannot be loaded: "
                                   f"{_first_line(err)}") from None
    return _backends[key]


def edit_text(token: str | None, node_id: int, text: str):
    from argtree.store import coauthor

    return call(coauthor.web_edit_text, token, node_id, text, request_id=uuid.uuid4().hex)


def delete_node(token: str | None, node_id: int):
    from argtree.store import coauthor

    return call(coauthor.web_delete_node, token, node_id, request_id=uuid.uuid4().hex)


def move_node(token: str | None, node_id: int, new_parent_id: int):
    from argtree.store import coauthor

    return call(coauthor.web_move_node, token, node_id, new_parent_id, request_id=uuid.uuid4().hex)


def tree_edits(token: str | None, tree_id: int) -> list[dict]:
    from argtree.store import coauthor

    return call(coauthor.web_tree_edits, token, tree_id, readonly=True)


def assignments(token: str | None) -> dict[int, list[str]]:
    from argtree.store import assignment

    return call(assignment.web_assignments, token, readonly=True)


def set_assignment(token: str | None, tree_id: int, names: list[str]) -> list[str]:
    from argtree.store import assignment

    return call(assignment.web_set_assignment, token, tree_id, names)
