"""Typed SQLAlchemy 2.0 models.  The schema itself is made by the Alembic
migrations in ``migrations/``; a test checks these models and the migrations agree.

Human labels (``Label``) and model outputs (``Node.model_*``, ``Node.rationale``)
live in separate tables: nothing a person said is ever overwritten by the model,
and nothing the model said is mistaken for a label.

All timestamps are naive UTC (``utcnow()``), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (JSON, Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint, join, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

__all__ = ["Base", "Proposition", "propositions", "queue_entries", "Tree", "Node", "Annotator", "Label", "Lease", "RootBelief", "ModelVersion",
           "LoopRun", "LoopTask", "Setting", "Calibration", "WebSession", "LoginThrottle", "utcnow", "MAX_TEXT", "ROLES", "TREE_STATUSES"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
MAX_TEXT = 10_000          # characters in a proposition, question, comment or rewrite
ROLES = ("annotator", "admin", "system")
TREE_STATUSES = ("active", "growing", "archived")
LIVE_HUMAN = "retracted_at IS NULL AND reliability IS NULL"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# A proposition's text and its place in the queue live in two tables: an answer rewrites ~400 queue rows
# (issue 15), and on rows this narrow they stay in the database's cache (on PostgreSQL the wide rows with
# their text did not fit in shared_buffers at 1M nodes, and that UPDATE was an answer's largest cost).
propositions = Table(
    "propositions", Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),  # sha256 of the normalized text
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    CheckConstraint("length(text) > 0", name="text_not_empty"),
)
queue_entries = Table(
    "queue_entries", Base.metadata,
    Column("proposition_id", ForeignKey("propositions.id", ondelete="CASCADE"), primary_key=True),
    Column("forest_voi", Float, nullable=False, default=0.0),
    Column("n_answers", Integer, nullable=False, default=0),  # live labels that count toward overlap
    Column("queue_rank", Float),
    Column("queue_bucket", Integer),
    CheckConstraint("n_answers >= 0", name="n_answers_nonneg"),
    Index("ix_queue_entries_queue_bucket", "queue_bucket"),
    # PostgreSQL: room on each page so an answer's rank updates stay on it (HOT: no index writes)
    postgresql_with={"fillfactor": 70},
)


class Proposition(Base):
    """One claim, shared by every tree (and node) that states it, with its place in the oracle queue.

    Mapped to the join of ``propositions`` (id, key, text) and ``queue_entries`` (one row per
    proposition): the ORM reads and writes both as one object; statements on the queue alone
    (``argtree.store.compute``) use ``queue_entries``.

    ``forest_voi`` is an upper bound on the sum over the live trees holding it of tree priority x node
    VoI (the nodes hold the exact numbers): answers write the increases they cause and, only in the
    queue's top buckets, the decreases; the queue's readers (``compute.top_exact``) serve by the exact
    sums and write back the stale bounds they pass (issue 15).  ``queue_rank`` is ``forest_voi`` while the proposition still needs answers
    (``n_answers`` < the overlap setting and VoI > 0), else NULL.  ``queue_bucket`` is
    ``floor(8 ln queue_rank)`` (``compute.rank_bucket``), and only it is indexed: the queue scans the
    index from the top bucket down and orders each bucket by ``queue_rank``, which gives exactly the
    order by ``queue_rank``, while an answer that moves ~400 forest VoIs rewrites index entries only for
    the few that change bucket (issue 15: the index entries were two thirds of an answer's writes).
    """

    __table__ = join(propositions, queue_entries, propositions.c.id == queue_entries.c.proposition_id)

    id = column_property(propositions.c.id, queue_entries.c.proposition_id)
    key = propositions.c.key
    text = propositions.c.text
    created_at = propositions.c.created_at
    forest_voi = queue_entries.c.forest_voi
    n_answers = queue_entries.c.n_answers
    queue_rank = queue_entries.c.queue_rank
    queue_bucket = queue_entries.c.queue_bucket

    nodes: Mapped[list["Node"]] = relationship(back_populates="proposition", viewonly=True)


class ModelVersion(Base):
    """A model (base or fine-tuned adapter) that ``ask``/``loop``/``ui`` can select by name."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[Optional[str]] = mapped_column(Text)           # adapter / model directory
    base: Mapped[Optional[str]] = mapped_column(String(500))    # base model it was trained from
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32), default="base")  # base | lora | remote ...
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # training data hashes, metrics, command
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Tree(Base):
    __tablename__ = "trees"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    priority: Mapped[float] = mapped_column(Float, default=1.0)
    model_version_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True)
    root_belief: Mapped[Optional[float]] = mapped_column(Float)        # the tree's belief: model evidence + labels
    root_labels_only: Mapped[Optional[float]] = mapped_column(Float)   # human/oracle labels alone
    direct_answer: Mapped[Optional[float]] = mapped_column(Float)      # the model's own P(yes), calibrated
    n_nodes: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[Optional[str]] = mapped_column(String(64), index=True)  # of the imported argtree/1 data
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # other top-level keys of the argtree/1 file
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    model_version: Mapped[Optional[ModelVersion]] = relationship()
    nodes: Mapped[list["Node"]] = relationship(back_populates="tree", viewonly=True, order_by="Node.id")

    __table_args__ = (
        CheckConstraint("status IN ('active', 'growing', 'archived')", name="status_known"),
        CheckConstraint("priority >= 0", name="priority_nonneg"),
        Index("ix_trees_created_at", "created_at"),
    )


class Node(Base):
    """A proposition's place in one tree, with the model's numbers (never a human's)."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_id: Mapped[int] = mapped_column(ForeignKey("trees.id", ondelete="CASCADE"))
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    local_id: Mapped[str] = mapped_column(String(200))           # the node id in the argtree/1 file
    proposition_id: Mapped[int] = mapped_column(ForeignKey("propositions.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order of the node in its argtree/1 file
    depth: Mapped[int] = mapped_column(Integer, default=0)
    # CPT: the root carries prior; premises carry p_if_true / p_if_false.
    prior: Mapped[Optional[float]] = mapped_column(Float)
    p_if_true: Mapped[Optional[float]] = mapped_column(Float)
    p_if_false: Mapped[Optional[float]] = mapped_column(Float)
    # What the model said (node extra keys "credence", "rationale", "model_output").
    model_credence: Mapped[Optional[float]] = mapped_column(Float)
    rationale: Mapped[Optional[str]] = mapped_column(Text)
    model_output: Mapped[Optional[Any]] = mapped_column(JSON)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The model's credence as fixed virtual evidence (DESIGN.md): {"value", "reliability", "credence",
    # "calibrated", "marginal"}; counted only while the node is not expanded (the frontier rule).
    model_evidence: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    # Derived, recomputed whenever a label on this tree's propositions changes.
    belief: Mapped[Optional[float]] = mapped_column(Float)
    voi: Mapped[float] = mapped_column(Float, default=0.0)
    root_if_true: Mapped[Optional[float]] = mapped_column(Float)
    root_if_false: Mapped[Optional[float]] = mapped_column(Float)

    tree: Mapped[Tree] = relationship(back_populates="nodes")
    proposition: Mapped[Proposition] = relationship(back_populates="nodes")

    __table_args__ = (
        UniqueConstraint("tree_id", "local_id"),
        CheckConstraint("(parent_id IS NULL) = (prior IS NOT NULL)", name="root_has_prior"),
        CheckConstraint("prior IS NULL OR (prior >= 0 AND prior <= 1)", name="prior_range"),
        CheckConstraint("p_if_true IS NULL OR (p_if_true >= 0 AND p_if_true <= 1)", name="p_if_true_range"),
        CheckConstraint("p_if_false IS NULL OR (p_if_false >= 0 AND p_if_false <= 1)", name="p_if_false_range"),
        # PostgreSQL: an answer rewrites beliefs and VoI (no index covers them) of every node of the ~4
        # trees holding its proposition, a tree's rows side by side; with half of each page free, those
        # updates stay on it (HOT) instead of inserting into all four node indexes (at 80: 38% HOT).
        {"postgresql_with": {"fillfactor": 50}},
    )


class Annotator(Base):
    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator")
    password_hash: Mapped[Optional[str]] = mapped_column(String(255))  # argon2id; NULL for system annotators
    reliability: Mapped[float] = mapped_column(Float, default=0.9)     # P(label = truth), weighs their labels
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("role IN ('annotator', 'admin', 'system')", name="role_known"),
        CheckConstraint("reliability > 0.5 AND reliability < 1", name="reliability_range"),
    )

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Label(Base):
    """One human (or oracle) answer.  Retracted labels stay, with ``retracted_at`` set."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposition_id: Mapped[int] = mapped_column(ForeignKey("propositions.id", ondelete="RESTRICT"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="RESTRICT"))
    request_id: Mapped[str] = mapped_column(String(128))
    value: Mapped[Optional[bool]] = mapped_column(Boolean)
    probability: Mapped[Optional[float]] = mapped_column(Float)
    dont_know: Mapped[bool] = mapped_column(Boolean, default=False)
    ill_posed: Mapped[bool] = mapped_column(Boolean, default=False)
    rewrite: Mapped[Optional[str]] = mapped_column(Text)
    rewrite_proposition_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("propositions.id", ondelete="SET NULL"))
    comment: Mapped[Optional[str]] = mapped_column(Text)
    seconds: Mapped[Optional[float]] = mapped_column(Float)
    reliability: Mapped[Optional[float]] = mapped_column(Float)  # overrides the annotator's (imported evidence)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    retracted_at: Mapped[Optional[datetime]] = mapped_column(DateTime)

    proposition: Mapped[Proposition] = relationship(foreign_keys=[proposition_id])
    annotator: Mapped[Annotator] = relationship()

    __table_args__ = (
        UniqueConstraint("annotator_id", "request_id"),
        Index("ix_labels_proposition_id", "proposition_id"),
        Index("ix_labels_annotator_id_created_at", "annotator_id", "created_at"),
        # At most one live label per person and proposition (a new answer retracts the old one);
        # imported evidence (which carries its own reliability) may repeat, as argtree/1 allows.
        Index("uq_labels_live", "proposition_id", "annotator_id", unique=True,
              sqlite_where=text(LIVE_HUMAN), postgresql_where=text(LIVE_HUMAN)),
        CheckConstraint("probability IS NULL OR (probability >= 0 AND probability <= 1)", name="probability_range"),
        CheckConstraint("reliability IS NULL OR (reliability > 0.5 AND reliability <= 1)", name="reliability_range"),
        CheckConstraint("(CASE WHEN value IS NOT NULL THEN 1 ELSE 0 END) + (CASE WHEN probability IS NOT NULL "
                        "THEN 1 ELSE 0 END) + (CASE WHEN dont_know THEN 1 ELSE 0 END) + "
                        "(CASE WHEN ill_posed THEN 1 ELSE 0 END) = 1", name="one_kind"),
        CheckConstraint("seconds IS NULL OR seconds >= 0", name="seconds_nonneg"),
    )

    @property
    def kind(self) -> str:
        """'true' / 'false' / 'probability' / 'dont_know' / 'ill_posed'."""
        if self.value is not None:
            return "true" if self.value else "false"
        if self.probability is not None:
            return "probability"
        return "dont_know" if self.dont_know else "ill_posed"


class Lease(Base):
    """A question handed to an annotator; it blocks others until it expires or is answered."""

    __tablename__ = "leases"

    proposition_id: Mapped[int] = mapped_column(ForeignKey("propositions.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_leases_annotator_id", "annotator_id"),)


class RootBelief(Base):
    """History of each tree's root belief: one row per change, with the label that caused it."""

    __tablename__ = "root_beliefs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_id: Mapped[int] = mapped_column(ForeignKey("trees.id", ondelete="CASCADE"))
    belief: Mapped[float] = mapped_column(Float)                     # the tree's belief
    labels_only: Mapped[Optional[float]] = mapped_column(Float)      # from labels alone
    direct: Mapped[Optional[float]] = mapped_column(Float)           # the model's direct answer
    cause: Mapped[str] = mapped_column(String(16))  # created | label | undo | edit | recompute
    label_id: Mapped[Optional[int]] = mapped_column(ForeignKey("labels.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_root_beliefs_tree_id_id", "tree_id", "id"),)


class LoopRun(Base):
    """One run of the autonomous loop (issue 6); its tasks make a killed run resumable."""

    __tablename__ = "loop_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | stopped | done | failed
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime)


class LoopTask(Base):
    """A unit of loop work (expand a node, grow a tree, ...), claimed by one worker at a time."""

    __tablename__ = "loop_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("loop_runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))   # e.g. 'propose', 'expand'
    key: Mapped[str] = mapped_column(String(255))   # unique within (run, kind), e.g. 'node:123'
    tree_id: Mapped[Optional[int]] = mapped_column(ForeignKey("trees.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[Optional[int]] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[Optional[str]] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[Optional[Any]] = mapped_column(JSON)
    claimed_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("run_id", "kind", "key"),
        Index("ix_loop_tasks_run_id_status_priority", "run_id", "status", "priority"),
    )


class Setting(Base):
    """Key/value settings kept in the database (queue overlap, lease length, VoI metric)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Calibration(Base):
    """A fitted monotone map from a model's credence to a probability (``argtree.calibration``).

    ``kind`` 'premise' maps premise credences (model evidence), 'direct' the direct answer to a
    question.  The newest row per (model, kind) is the one in use."""

    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    n: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("kind IN ('premise', 'direct')", name="kind_known"),
        CheckConstraint("n >= 0", name="n_nonneg"),
        Index("ix_calibrations_model_kind_id", "model", "kind", "id"),
    )


class WebSession(Base):
    """A login to the web app: created at login, ended by logout, a password change or deactivation.

    Only a SHA-256 of the random token is stored (the token itself lives in the browser's
    HttpOnly cookie); ``revoked_at`` set or ``expires_at`` passed means the session is over."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    client: Mapped[Optional[str]] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
    revoked_why: Mapped[Optional[str]] = mapped_column(String(16))  # logout | password | deactivated | admin

    __table_args__ = (
        CheckConstraint("revoked_why IS NULL OR revoked_why IN ('logout', 'password', 'deactivated', 'admin')",
                        name="revoked_why_known"),
    )


class LoginThrottle(Base):
    """Failed logins per account name and per client address, so a restart does not reset the limit.

    After a few failures each further attempt must wait ``not_before`` (a delay that doubles);
    after more, the key is locked until ``locked_until``.  A success clears the row."""

    __tablename__ = "login_throttle"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)   # account | client
    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # the name tried, or the client address
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    not_before: Mapped[Optional[datetime]] = mapped_column(DateTime)
    locked_until: Mapped[Optional[datetime]] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("kind IN ('account', 'client')", name="kind_known"),
        CheckConstraint("failures >= 0", name="failures_nonneg"),
    )


# -- issue 13: gold questions and learned annotator reliability ------------------------------------

class GoldAnswer(Base):
    """A proposition an admin marks with its known answer: mixed into the queue, never shown as gold,
    it scores whoever answers it (``argtree.store.reliability``)."""

    __tablename__ = "gold_answers"

    proposition_id: Mapped[int] = mapped_column(ForeignKey("propositions.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    note: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnnotatorEstimate(Base):
    """An annotator's learned reliability (one-coin Dawid–Skene, ``argtree.annotators``): the weight of
    their labels' soft evidence once it exists; ``annotators.reliability`` is its prior."""

    __tablename__ = "annotator_estimates"

    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), primary_key=True)
    reliability: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)       # 90% posterior interval
    high: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)     # Beta posterior pseudo-counts
    beta: Mapped[float] = mapped_column(Float)
    n_labels: Mapped[float] = mapped_column(Float)
    n_gold: Mapped[int] = mapped_column(Integer, default=0)
    gold_correct: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("reliability > 0 AND reliability < 1", name="reliability_range"),
        CheckConstraint("low <= reliability AND reliability <= high", name="interval_order"),
    )


__all__ += ["GoldAnswer", "AnnotatorEstimate"]


class FlagResolution(Base):
    """An admin's resolution of a consistency flag (``argtree.store.flags``), keyed by the flag's stable key."""

    __tablename__ = "flag_resolutions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)   # e.g. 'negation:12:34', 'labels:7'
    resolved_by: Mapped[Optional[int]] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    note: Mapped[Optional[str]] = mapped_column(Text)
    resolved_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


__all__ += ["FlagResolution"]


# -- issue 13: co-authoring the trees and per-tree assignment (``argtree.store.coauthor``) ---------

EDIT_ACTIONS = ("add", "edit", "delete", "move", "rewrite")


class TreeEdit(Base):
    """One change a person made to a tree's structure or text (who, when, what): a premise added, a
    premise's text edited (a new proposition version), a node deleted or moved, an ill-posed answer's
    rewrite put in place.  ``detail`` keeps what was there before (old text, proposition, parent, numbers)."""

    __tablename__ = "tree_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_id: Mapped[int] = mapped_column(ForeignKey("trees.id", ondelete="CASCADE"))
    node_id: Mapped[Optional[int]] = mapped_column(Integer)   # no foreign key: a deleted node's edit stays
    annotator_id: Mapped[Optional[int]] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    label_id: Mapped[Optional[int]] = mapped_column(ForeignKey("labels.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[Optional[str]] = mapped_column(String(128))  # a retried request changes nothing twice
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("action IN ('add', 'edit', 'delete', 'move', 'rewrite')", name="action_known"),
        UniqueConstraint("annotator_id", "request_id"),
        Index("ix_tree_edits_tree_id_id", "tree_id", "id"),
    )


class TreeAssignment(Base):
    """Who may answer a tree's questions: a tree with no rows is open to everyone; one with rows is
    served (by the queue) only to the annotators named in them."""

    __tablename__ = "tree_assignments"

    tree_id: Mapped[int] = mapped_column(ForeignKey("trees.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), primary_key=True)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("annotators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_tree_assignments_annotator_id", "annotator_id"),)


__all__ += ["TreeEdit", "TreeAssignment", "EDIT_ACTIONS"]
