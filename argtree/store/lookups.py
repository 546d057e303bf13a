"""Small read-only queries the command line needs (so ``argtree.commands`` holds no SQL)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Tree
from .trees import content_hash

__all__ = ["tree_with_content"]


def tree_with_content(session: Session, tree, evidence=()) -> int | None:
    """Id of a stored tree with exactly this content (nodes and evidence; ``content_hash``), or None."""
    return session.scalar(select(Tree.id).where(Tree.content_hash == content_hash(tree, evidence))
                          .order_by(Tree.id).limit(1))
