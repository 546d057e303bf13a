"""``argtree tree``: co-authoring stored trees (issue 13): list a tree's nodes, add a premise, edit a
premise's text, move or delete a node (admins), and the tree's change history.

NODE is a node's database id (``argtree tree nodes TREE``) or TREE:LOCAL_ID (the node id in the tree's
argtree/1 file, as ``argtree dump`` writes it).  Every change names who makes it (``--by``, an account),
is recorded with the time, and recomputes the tree's beliefs, VoI and root at once.
"""

from __future__ import annotations

import click

from . import InputError, escape_controls, print_json
from .db import DATABASE_HELP, _store_errors

BY_HELP = "The account making the change (recorded with it)."


@click.group()
def tree() -> None:
    """Co-author a stored tree: nodes, add-premise, edit, move, delete, history."""


def _who(s, by: str, admin: bool = False) -> int:
    from ..store import get_annotator

    a = get_annotator(s, by)
    if not a.active:
        raise InputError(f"account {by!r} is deactivated")
    if admin and a.role != "admin":
        raise InputError(f"only admins may move or delete a node; {by!r} is {a.role}")
    return a.id


def _show(res, as_json: bool) -> None:
    out = {"edit_id": res.edit_id, "action": res.action, "tree_id": res.tree_id, "node_id": res.node_id,
           "proposition_id": res.proposition_id, "removed": res.removed, "repeated": res.repeated,
           "root_before": res.root_before, "root_after": res.root_after}
    if as_json:
        print_json(out)
        return

    def p(x):
        return "–" if x is None else f"{x:.4f}"

    what = {"add": "added node", "edit": "new text for node", "move": "moved node", "delete": "deleted node"}
    extra = f" ({res.removed} node(s) with its subtree)" if res.action == "delete" else ""
    again = " (already done by this request; nothing changed)" if res.repeated else ""
    click.echo(f"tree {res.tree_id}: {what[res.action]} {res.node_id}{extra}{again}; "
               f"root {p(res.root_before)} -> {p(res.root_after)}")


@tree.command("nodes")
@click.argument("tree_id", type=int)
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON.")
@_store_errors
def nodes(tree_id: int, database: str | None, as_json: bool) -> None:
    """A stored tree's nodes: id, file id, parent, stance, belief, VoI, text."""
    from ..store import session_scope, tree_nodes

    with session_scope(database, readonly=True) as s:
        rows = tree_nodes(s, tree_id)
    if as_json:
        print_json([{"id": n.id, "local_id": n.local_id, "parent_id": n.parent_id, "proposition_id": n.proposition_id,
                     "stance": n.stance, "belief": n.belief, "voi": n.voi, "p_if_true": n.p_if_true,
                     "p_if_false": n.p_if_false, "text": n.text} for n in rows])
        return
    for n in rows:
        belief = "–" if n.belief is None else f"{n.belief:.3f}"
        click.echo(f"{n.id}\t{escape_controls(n.local_id)}\t{n.parent_id or '-'}\t{n.stance}\t{belief}\t"
                   f"{n.voi:.4f}\t{escape_controls(n.text[:90])}")


@tree.command("add-premise")
@click.argument("node")
@click.argument("text")
@click.option("--p-if-true", type=float, default=None, help="P(premise true | NODE true).")
@click.option("--p-if-false", type=float, default=None, help="P(premise true | NODE false).")
@click.option("--for", "stance", flag_value="for", default=None, help="It supports NODE (checked against the numbers).")
@click.option("--against", "stance", flag_value="against", help="It attacks NODE (checked against the numbers).")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default=None,
              help="Let this model elicit the numbers instead (credence, P(NODE | premise), P(NODE | not premise)).")
@click.option("--model", default=None, help="With --backend: the model.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="openai backend: seconds per request before it is retried (default 120).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="openai backend: requests in flight at once (default 8).")
@click.option("--by", "by", required=True, help=BY_HELP)
@click.option("--request-id", default=None, help="Sending the same id again changes nothing twice.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@_store_errors
def add_premise(node, text, p_if_true, p_if_false, stance, backend, model, timeout, concurrency, by, request_id,
                database, as_json) -> None:
    """Add a premise TEXT under NODE, with your numbers (--p-if-true/--p-if-false) or the model's (--backend)."""
    from ..store import session_scope
    from ..store.coauthor import add_premise as add
    from ..store.coauthor import node_ref
    from ..store.models import Node, Proposition

    own = p_if_true is not None or p_if_false is not None
    if own and backend is not None:
        raise InputError("give your numbers (--p-if-true/--p-if-false) or --backend, not both")
    if not own and backend is None:
        raise InputError("give --p-if-true and --p-if-false, or --backend to let a model elicit them")
    if own and (p_if_true is None or p_if_false is None):
        raise InputError("give both --p-if-true and --p-if-false")
    numbers: dict = {"p_if_true": p_if_true, "p_if_false": p_if_false}
    if backend is not None:
        from ..coauthor import elicit_premise
        from .ask import make_model_backend

        with session_scope(database, readonly=True) as s:
            parent = s.get(Node, node_ref(s, node))
            if parent is None:
                raise InputError(f"no node {node!r}")
            claim = s.get(Proposition, parent.proposition_id).text
        be = make_model_backend(backend, model, quiet=as_json, timeout=timeout, concurrency=concurrency)
        numbers = elicit_premise(be, claim, text)
    with session_scope(database) as s:
        res = add(s, _who(s, by), node_ref(s, node), text, stance=stance, request_id=request_id, **numbers)
    _show(res, as_json)


@tree.command("edit")
@click.argument("node")
@click.argument("text")
@click.option("--by", "by", required=True, help=BY_HELP)
@click.option("--request-id", default=None, help="Sending the same id again changes nothing twice.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@_store_errors
def edit(node, text, by, request_id, database, as_json) -> None:
    """Give premise NODE the text TEXT: a new proposition version; the old one keeps its labels."""
    from ..store import session_scope
    from ..store.coauthor import edit_text, node_ref

    with session_scope(database) as s:
        res = edit_text(s, _who(s, by), node_ref(s, node), text, request_id=request_id)
    _show(res, as_json)


@tree.command("move")
@click.argument("node")
@click.argument("new_parent")
@click.option("--p-if-true", type=float, default=None, help="New P(NODE true | new parent true) (default: keep).")
@click.option("--p-if-false", type=float, default=None, help="New P(NODE true | new parent false) (default: keep).")
@click.option("--by", "by", required=True, help="The admin account making the change.")
@click.option("--request-id", default=None, help="Sending the same id again changes nothing twice.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@_store_errors
def move(node, new_parent, p_if_true, p_if_false, by, request_id, database, as_json) -> None:
    """Move NODE (with everything below it) under NEW_PARENT in the same tree (admins)."""
    from ..store import session_scope
    from ..store.coauthor import move_node, node_ref

    with session_scope(database) as s:
        res = move_node(s, _who(s, by, admin=True), node_ref(s, node), node_ref(s, new_parent),
                        p_if_true=p_if_true, p_if_false=p_if_false, request_id=request_id)
    _show(res, as_json)


@tree.command("delete")
@click.argument("node")
@click.option("--by", "by", required=True, help="The admin account making the change.")
@click.option("--request-id", default=None, help="Sending the same id again changes nothing twice.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the change as JSON.")
@_store_errors
def delete(node, by, request_id, database, as_json) -> None:
    """Delete NODE and everything below it (admins; never the root)."""
    from ..store import session_scope
    from ..store.coauthor import delete_node, node_ref

    with session_scope(database) as s:
        res = delete_node(s, _who(s, by, admin=True), node_ref(s, node), request_id=request_id)
    _show(res, as_json)


@tree.command("history")
@click.argument("tree_id", type=int)
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
@_store_errors
def history(tree_id: int, database: str | None, as_json: bool) -> None:
    """The tree's changes, newest first: who, when, what (and what was there before)."""
    from ..store import session_scope
    from ..store.coauthor import tree_edits

    with session_scope(database, readonly=True) as s:
        rows = tree_edits(s, tree_id)
    if as_json:
        print_json([{**r, "at": r["at"].isoformat()} for r in rows])
        return
    for r in rows:
        d = r["detail"]
        what = {"add": d.get("text"), "edit": f"{d.get('old_text')} -> {d.get('new_text')}",
                "rewrite": f"{d.get('old_text')} -> {d.get('new_text')}",
                "move": f"under node {d.get('old_parent_id')} -> {d.get('new_parent_id')}",
                "delete": f"{len(d.get('removed', ()))} node(s)"}[r["action"]]
        click.echo(f"{r['at'].isoformat(sep=' ', timespec='seconds')}\t{r['by'] or '?'}\t{r['action']}\tnode "
                   f"{r['node_id']}\t{escape_controls(str(what)[:120])}")
