"""Storage and the oracle queue (SQLAlchemy 2.0; SQLite by default, PostgreSQL for teams).

Public API (everything below is importable from ``argtree.store``)::

    # connecting (db.py)
    session_scope(url=None, readonly=False)     # with session_scope() as s: ...  commits on success
    open_session(url=None, readonly=False)      # a Session you commit/close yourself
    database_url()                              # ARGTREE_DATABASE_URL or sqlite under ARGTREE_HOME
    upgrade(url=None, revision="head"), downgrade(url, revision)   # Alembic, = `argtree db upgrade`
    SchemaError                                 # unmigrated/newer schema; message names the command

    # trees (trees.py)
    save_tree(s, tree, evidence=(), *, question=None, model_version=None, priority=1.0,
              status="active", meta=None) -> tree_id
    load_tree(s, tree_id) -> (ArgumentTree, tuple[Evidence])   # evidence = live labels
    list_trees(s, search=None, *, status=None, limit=50, offset=0) -> [TreeSummary]
    tree_nodes(s, tree_id) -> [NodeInfo]         # numbers of every node, for graphs
    get_tree(s, tree_id) -> Tree;  set_tree(s, tree_id, priority=..., status=...)
    update_node(s, node_id, prior=/p_if_true=/p_if_false=)   # edit numbers, recompute
    recompute_all(s)

    # the queue (queue.py)
    next_question(s, annotator_id, *, lease_seconds=None) -> Question | None
    submit_label(s, annotator_id, proposition_id, value=None, *, probability=None,
                 dont_know=False, ill_posed=False, rewrite=None, comment=None,
                 seconds=None, request_id=None) -> Label
    undo_last_label(s, annotator_id) -> Label | None   # and re-leases that question
    release_lease(s, annotator_id)
    root_history(s, tree_id) -> [RootPoint]
    annotator_stats(s, annotator_id, since=None, remaining_limit=1000) -> AnnotatorStats
    labels_for(s, proposition_id=None, annotator_id=None, include_retracted=False)
    get_queue_settings(s), set_queue_settings(s, overlap=, lease_seconds=, metric=, gold_rate=)
                                                # other processes see a change within 2 s

    # gold questions and learned reliability (reliability.py; issue 13)
    mark_gold(s, proposition_id, value, by=None, note=None), unmark_gold(s, pid), gold_list(s)
    update_reliability(s, min_move=0.005) -> {"moved", "trees", ...}   # Dawid-Skene; moved trees recomputed
    reliability_table(s) -> [dict]               # prior, learned, 90% interval, gold answered
    reliability.queue_ranking(s, top), reliability.all_labels(s)
    # consistency flags (flags.py): find_flags(s, ...) -> [Flag], resolve_flag(s, key, by=, note=)
    # blind answers: webui.* shows a non-admin no other's answer on a proposition before theirs
    # co-authoring (coauthor.py): add_premise(s, who, parent_node_id, text, p_if_true=, p_if_false=),
    #   edit_text(s, who, node_id, text), delete_node / move_node (admins), tree_edits(s, tree_id);
    #   an ill-posed answer's rewrite replaces its node (apply_rewrite, from submit_label)
    # assignment (assignment.py): assign / unassign / set_assignment(s, tree_id, names), assignments(s)
    # batch-aware serving (batch.py): next_question leases the greedy batch's next pick across annotators

    # accounts (accounts.py)
    add_annotator(s, name, password, admin=False, *, reliability=0.9) -> Annotator
    verify_password(s, name, password) -> Annotator | None
    get_annotator(s, name_or_id), list_annotators(s), set_password(s, who, pw),
    set_annotator(s, who, admin=, active=, reliability=)

    # web sessions and login limits (sessions.py); the web app's reads and writes (webui.py)
    attempt_login(s, name, password, *, client=None) -> LoginResult   # limited per name and client
    create_session(s, annotator_id) -> token;  check_session(s, token, for_write=False, admin=False)
    revoke_session(s, token), revoke_sessions(s, annotator_id, why)   # set_password/deactivation call it
    SessionEnded                                 # a StoreError whose .why says how the session ended
    webui.answer(s, token, ...), webui.tree_list(s, token, ...), ...  # every one checks the session

    # model versions and loop runs (registry.py)
    register_model_version(s, name, path=None, base=None, *, kind="lora", parent=None, meta=None)
    get_model_version(s, name="latest"), list_model_versions(s)
    start_loop_run(s, config), unfinished_loop_run(s), heartbeat_loop_run(s, run_id, stats),
    finish_loop_run(s, run_id, status), add_loop_tasks(s, run_id, tasks),
    claim_loop_task(s, run_id, worker, kinds=None, stale_after=600), finish_loop_task(s, task_id, status, result)

    # the autonomous loop's store (loops.py): handed to argtree.loop, one transaction per method
    from argtree.store.loops import LoopStore;  LoopStore(url=None)

    # oracles' answers as labels (oracles.py), lookups for the command line (lookups.py)
    record_answers(s, oracle, queries, answers), oracle_annotator(s, name, reliability)
    tree_with_content(s, tree, evidence) -> tree_id | None

Conventions:

* Every query function takes a Session and runs in the caller's transaction;
  nothing is durable until it commits (``session_scope`` does that on exit).
  Bad input raises ``StoreError`` (a ValueError naming the field) or
  ``NotFound`` before anything is written; tree problems raise ``TreeError``.
* Node extra keys ``credence``, ``rationale`` and ``model_output`` (what the model
  said) are stored in their own columns (``Node.model_credence`` ...) and handed
  back in ``Node.extra`` by ``load_tree``.  Human answers live only in ``labels``.
* A label becomes evidence weighted by the annotator's learned reliability
  (``annotator_estimates``), else the ``reliability`` they were created with (default
  0.9); imported argtree/1 evidence keeps its own reliability (system annotator
  ``imported``) and is stored once however often a file repeats it.  Timestamps are naive UTC.
* The queue serves a proposition to at most ``queue.overlap`` people (answers plus
  live leases); "don't know" does not count as an answer, "ill-posed" does.

Tests and other tools get a migrated throw-away database from ``argtree.store.testing``:
``sqlite_db(tmp_path)`` (a copy of a database migrated once per process), ``postgres_schema()``
(a schema of its own, dropped afterwards; skips with how-to-enable when the server is down),
``reset_postgres(url)``, ``fast_password_hashing()`` (cheap argon2 for tests),
``random_forest(...)`` and ``check_consistency(url)`` (stored numbers vs the core, from scratch).
"""

from .accounts import add_annotator, get_annotator, list_annotators, set_annotator, set_password, verify_password
from .db import SchemaError, database_url, downgrade, get_engine, open_session, session_scope, upgrade
from .errors import NotFound, StoreError
from .models import (Annotator, Label, Lease, LoginThrottle, LoopRun, LoopTask, ModelVersion, Node, Proposition,
                     RootBelief, Tree, WebSession, utcnow)
from .queue import (AnnotatorStats, ChainLink, Question, RootPoint, annotator_stats, get_queue_settings, labels_for,
                    next_question, release_lease, root_history, set_queue_settings, submit_label, undo_last_label)
from .registry import (add_loop_tasks, claim_loop_task, finish_loop_run, finish_loop_task, get_loop_run,
                       get_model_version, heartbeat_loop_run, list_model_versions, loop_task_counts,
                       register_model_version, start_loop_run, unfinished_loop_run)
from .sessions import (LoginResult, SessionEnded, attempt_login, check_session, create_session, revoke_session,
                       revoke_sessions)
from .trees import (NodeInfo, TreeSummary, get_tree, list_trees, load_tree, recompute_all, save_tree, set_tree,
                    tree_nodes, update_node)

__all__ = [
    "SchemaError", "StoreError", "NotFound", "database_url", "get_engine", "open_session", "session_scope",
    "upgrade", "downgrade",
    "Annotator", "Label", "Lease", "LoopRun", "LoopTask", "ModelVersion", "Node", "Proposition", "RootBelief", "Tree",
    "WebSession", "LoginThrottle", "utcnow",
    "attempt_login", "create_session", "check_session", "revoke_session", "revoke_sessions", "SessionEnded",
    "LoginResult",
    "save_tree", "load_tree", "list_trees", "tree_nodes", "get_tree", "set_tree", "update_node", "recompute_all",
    "TreeSummary", "NodeInfo",
    "next_question", "submit_label", "undo_last_label", "release_lease", "root_history", "annotator_stats",
    "labels_for", "get_queue_settings", "set_queue_settings", "Question", "ChainLink", "RootPoint", "AnnotatorStats",
    "add_annotator", "verify_password", "get_annotator", "list_annotators", "set_password", "set_annotator",
    "register_model_version", "get_model_version", "list_model_versions", "start_loop_run", "get_loop_run",
    "unfinished_loop_run", "heartbeat_loop_run", "finish_loop_run", "add_loop_tasks", "claim_loop_task",
    "finish_loop_task", "loop_task_counts",
]

# Issue 13: gold questions and learned annotator reliability (``argtree.store.reliability``).
from .models import AnnotatorEstimate, GoldAnswer  # noqa: E402
from .reliability import gold_list, mark_gold, reliability_table, unmark_gold, update_reliability  # noqa: E402

__all__ += ["GoldAnswer", "AnnotatorEstimate", "mark_gold", "unmark_gold", "gold_list", "update_reliability",
            "reliability_table"]
