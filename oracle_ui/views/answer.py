"""Answer page: one question at a time, the highest-VoI one the queue leases to this person.

Every answer (and undo) has a keyboard shortcut.  Answers are stored in the
button's callback, which runs before the page is drawn again, so the next
question is on screen in the same rerun.  Each one checks the session in its
own transaction: an answer from a tab whose session ended (logout elsewhere, a
new password, deactivation) stores nothing and the page says why.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st

from oracle_ui import data, render

# answer kind -> (button label, shortcut)
KEYS = {"true": ("True", "T"), "false": ("False", "F"), "probability": ("Probability", "P"),
        "dont_know": ("Don't know", "D"), "ill_posed": ("Ill-posed", "I")}
UNDO_KEY = "U"


def _flash(message: str, error: bool = False) -> None:
    st.session_state["answer_flash"] = (message, error)


def _ended(err: data.SessionEnded) -> None:
    """The session ended under this tab: nothing was saved; the full rerun shows why (main.py)."""
    st.session_state["session_ended"] = err


def _submit(token: str, proposition_id: int, kind: str, request_id: str, shown_at: float) -> None:
    ss = st.session_state
    pid = proposition_id
    try:
        _, nxt = data.answer(
            token, pid, kind, probability=ss.get(f"prob_{pid}", 0.5), rewrite=ss.get(f"rewrite_{pid}", ""),
            comment=ss.get(f"comment_{pid}", ""), seconds=max(0.0, time.time() - shown_at), request_id=request_id,
            then_next=True)
        ss["answer_next"] = (time.monotonic(), nxt)
    except data.SessionEnded as err:
        _ended(err)
        return
    except data.Unavailable as err:
        _flash(f"Not saved: the database is not available ({err}).", True)
        return
    except ValueError as err:  # StoreError: e.g. a rewrite that is too long
        _flash(f"Not saved: {err}", True)
        return
    ss.get("answer_req", {}).pop(pid, None)
    ss.get("answer_shown", {}).pop(pid, None)
    label = KEYS[kind][0] + (f" ({ss.get(f'prob_{pid}', 0.5):.2f})" if kind == "probability" else "")
    _flash(f"Saved: {label}.")


def _undo(token: str) -> None:
    try:
        text = data.undo(token)
    except data.SessionEnded as err:
        _ended(err)
        return
    except data.Unavailable as err:
        _flash(f"Undo failed: the database is not available ({err}).", True)
        return
    _flash("Undone: your last answer is withdrawn and its question is back." if text is not None
           else "Nothing to undo.")


def page() -> None:
    _question_area()


@st.fragment
def _question_area() -> None:
    # A fragment: an answer reruns only this part of the page (not the session check and the navigation),
    # and the callback already fetched the next question in the transaction that stored the answer.
    if "session_ended" in st.session_state:
        st.rerun(scope="app")  # the session ended under this tab: the full run says so (main.py)
    try:
        _draw()
    except data.SessionEnded:  # found while reading: the full run says why (main.py)
        st.rerun(scope="app")
    except data.Unavailable as err:
        st.error(f"The database is not available right now; nothing was lost.\n\n{err}")


def _draw() -> None:
    token = st.session_state["token"]
    flash = st.session_state.pop("answer_flash", None)
    fresh = st.session_state.pop("answer_next", None)
    # Use the question fetched with the answer only in the rerun right after it (its lease is fresh).
    got = fresh[1] if fresh is not None and time.monotonic() - fresh[0] < 5 else data.next_question(token)
    q, root = got if got is not None else (None, None)

    # Slots in page order, filled in the order that matters: the answer buttons of this question
    # reach the browser before its premise does (a key pressed on seeing the premise answers it,
    # never the previous one), then the premise, then the counts and the context.
    top, premise_slot, context = st.container(), st.container(), st.container()
    if q is not None:
        _buttons(token, q.proposition_id)
        with premise_slot:
            render.box(q.text, caption=f"Is this true?  (proposition {q.proposition_id})")
        _inputs(q.proposition_id)
    stats = data.stats(token)
    with top:
        left = f"{stats.remaining:,}+" if getattr(stats, "remaining_capped", False) else f"{stats.remaining:,}"
        render.figures([("Left to answer", left), ("Answered today", stats.answered_today),
                        ("Answered in all", stats.answered_total)], testid="counts")
        if flash:
            (st.error if flash[1] else st.success)(flash[0])
    if q is None:
        st.success("Nothing is waiting for you: every open question is answered or being answered by someone else.")
        st.button("Undo last answer", key="undo", shortcut=UNDO_KEY, on_click=_undo, args=(token,))
        return
    with context:
        _context(q, root)


def _buttons(token: str, pid: int) -> None:
    shown_at = st.session_state.setdefault("answer_shown", {}).setdefault(pid, time.time())
    request_id = st.session_state.setdefault("answer_req", {}).setdefault(pid, uuid.uuid4().hex)
    args = (token, pid)
    # Keys carry the proposition: a stale button of the previous question can only repeat its own
    # (idempotent) answer, never land on this one.  One flex row: few elements before the premise.
    row = st.container(horizontal=True, gap="small")
    for kind in ("true", "false", "dont_know", "ill_posed", "probability"):
        label, key = KEYS[kind]
        row.button(label, key=f"ans_{kind}_{pid}", shortcut=key, on_click=_submit,
                   args=(*args, kind, request_id, shown_at), width="stretch",
                   type="primary" if kind in ("true", "false") else "secondary",
                   help="Answer with the probability set on the slider below." if kind == "probability" else None)
    row.button("Undo", key="undo", shortcut=UNDO_KEY, on_click=_undo, args=(token,), width="stretch",
               help="Withdraw your last answer and get its question back.")


def _inputs(pid: int) -> None:
    c = st.columns([2, 3, 3])
    c[0].slider("Probability it is true", 0.0, 1.0, 0.5, 0.05, key=f"prob_{pid}")
    c[1].text_input("Comment (optional)", key=f"comment_{pid}", max_chars=2000)
    c[2].text_input("Rewrite, if ill-posed (optional: replaces it in its trees)", key=f"rewrite_{pid}",
                    max_chars=2000)
    st.caption("Keys: T true · F false · P probability (slider) · D don't know · I ill-posed · U undo")


def _context(q, root) -> None:
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Why it is asked:** the chain up to the root question")
        lines = []
        for depth, link in enumerate(reversed(q.chain)):
            rel = "root question" if link.stance == "root" else link.stance
            lines.append(f"{'    ' * depth}[{rel}, P={render.pct(link.belief)}] {link.text}")
        render.text("\n".join(lines))
        st.markdown("**The model's rationale**")
        render.text(q.rationale or "(the model gave none)")
    with right:
        render.figures([("Model's credence", render.pct(q.model_credence)), ("Belief now", render.pct(q.belief)),
                        ("Root if true", render.pct(q.root_if_true)),
                        ("Root if false", render.pct(q.root_if_false))], testid="numbers")
        render.root_numbers(root)
        st.text(f"If true → {render.num(q.root_if_true, 2)}, if false → {render.num(q.root_if_false, 2)}; "
                f"VoI {render.num(q.voi, 4)} here, {render.num(q.forest_voi, 4)} over "
                f"{len(q.tree_ids)} tree(s).")
