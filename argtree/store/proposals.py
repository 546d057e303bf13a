"""The loop's own proposals, read back for training the proposer (issue 16).

``loop_proposal_items(s)``: one item per active tree that ``argtree loop`` grew for a question it
proposed about a topic (the tree's ``meta["topic"]``, written by the loop), with the live labels on its
nodes and where each came from (``argtree.propose.label_source``).  ``argtree.propose.loop_proposal_records``
turns them into records; ``argtree export --kind proposals`` and ``argtree improve`` rounds use both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Annotator, Label, Node, Tree

__all__ = ["loop_proposal_items"]


def loop_proposal_items(session: Session, *, status: str = "active") -> list[dict[str, Any]]:
    """[{"tree_id", "run", "topic", "question", "labels": [{"node", "root", "kind", "probability", "source",
    "annotator"}]}] for the trees whose meta names the topic the loop proposed their question for; tree id order.
    Archived versions (re-expansions replace a tree by its next version) are left out by ``status``."""
    from ..propose import label_source

    trees = [t for t in session.scalars(select(Tree).where(Tree.status == status).order_by(Tree.id))
             if isinstance(t.meta, dict) and isinstance(t.meta.get("topic"), str) and t.meta["topic"].strip()]
    if not trees:
        return []
    ids = [t.id for t in trees]
    nodes: dict[int, list[tuple[str, int, bool]]] = {}
    for tree_id, local_id, prop_id, parent_id in session.execute(
            select(Node.tree_id, Node.local_id, Node.proposition_id, Node.parent_id).where(Node.tree_id.in_(ids))):
        nodes.setdefault(tree_id, []).append((local_id, prop_id, parent_id is None))
    props = {p for ns in nodes.values() for _, p, _ in ns}
    labels: dict[int, list[tuple[Label, Annotator]]] = {}
    if props:
        for lb, ann in session.execute(select(Label, Annotator).join(Annotator, Annotator.id == Label.annotator_id)
                                       .where(Label.proposition_id.in_(props), Label.retracted_at.is_(None))
                                       .order_by(Label.id)):
            labels.setdefault(lb.proposition_id, []).append((lb, ann))
    out = []
    for t in trees:
        labs = []
        for local_id, prop_id, is_root in nodes.get(t.id, []):
            for lb, ann in labels.get(prop_id, []):
                labs.append({"node": local_id, "root": is_root, "kind": lb.kind, "probability": lb.probability,
                             "source": label_source(ann.name, ann.role), "annotator": ann.name})
        out.append({"tree_id": t.id, "run": t.meta.get("loop_run"), "topic": t.meta["topic"],
                    "question": t.question, "labels": labs})
    return out
