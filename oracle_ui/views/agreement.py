"""Agreement page (admin): labels per annotator, time per answer, Krippendorff's alpha, disagreements."""

from __future__ import annotations

import statistics

import streamlit as st

from oracle_ui import data, render


def _reliability(token: str) -> None:
    """Learned reliability (issue 13): each annotator's weight, its interval, gold answered; re-estimate."""
    st.subheader("Learned reliability")
    rows = data.reliabilities(token)
    if rows:
        st.table(render.rows([{"annotator": r["annotator"], "role": r["role"], "labels": r["labels"],
                                   "prior": r["prior"], "learned": r["reliability"],
                                   "90% interval": (f"[{r['low']:.3f}, {r['high']:.3f}]"
                                                    if r["low"] is not None else "–"),
                                   "gold right": f"{r['gold_correct']:.0f}/{r['gold']}"} for r in rows]))
    st.caption("P(their label is right), learned by Dawid–Skene over every answer and the gold questions, with "
               "the reliability the account was created with as its prior; it weighs their answers in every tree. "
               "Re-estimated automatically every 25 answers.")
    if st.button("Re-estimate now", key="reestimate"):
        out = data.estimate_reliability(token)
        st.session_state["reliability_flash"] = (f"Re-estimated: {len(out['moved'])} annotator(s) moved, "
                                                 f"{out['trees']} tree(s) recomputed.")
        st.rerun()
    flash = st.session_state.pop("reliability_flash", None)
    if flash:
        st.success(flash)
    qs = data.queue_settings(token)
    with st.form("queue_settings"):
        st.markdown("**Queue**")
        c = st.columns(2)
        overlap = c[0].number_input("Answers per question (overlap)", 1, 100, int(qs["queue.overlap"]), 1)
        gold = c[1].number_input("Share of gold questions", 0.0, 1.0, float(qs["queue.gold_rate"]), 0.05)
        if st.form_submit_button("Save"):
            try:
                data.set_queue(token, overlap=int(overlap), gold_rate=float(gold))
                st.success("Saved.")
            except ValueError as err:
                st.error(str(err))


def page() -> None:
    st.title("Agreement")
    _labels()
    _reliability(st.session_state["token"])
    _flags(st.session_state["token"])


def _flags(token: str) -> None:
    """Consistency flags to review; resolving one is recorded with who, when and why (issue 13)."""
    found = data.flags(token)
    st.subheader(f"Consistency flags ({len(found)})")
    st.caption("A proposition and its negation both believed above 0.7 in one tree (or both labeled true); "
               "conflicting answers from reliable annotators; one proposition believed very differently across "
               "trees. Fix the tree or the labels, then mark the flag resolved.")
    for f in found:
        with st.container(border=True):
            st.markdown(f"**{f.kind}** · `{f.key}` · {render.visible(f.why)}")
            for t in f.texts:
                render.text(t)
            note = st.text_input("What was done (optional)", key=f"flag_note_{f.key}")
            if st.button("Mark resolved", key=f"flag_resolve_{f.key}"):
                data.resolve_flag(token, f.key, note or None)
                st.rerun()


def _labels() -> None:
    labels = data.human_labels(st.session_state["token"])
    if not labels:
        st.info("No answers yet.")
        return
    per: dict[str, list[dict]] = {}
    for r in labels:
        per.setdefault(r["annotator"], []).append(r)
    rows = []
    for name, rs in sorted(per.items()):
        secs = [r["seconds"] for r in rs if r["seconds"] is not None]
        row = {"annotator": name, "labels": len(rs)}
        for kind in data.KINDS:
            row[kind] = sum(1 for r in rs if r["kind"] == kind)
        row["median seconds"] = round(statistics.median(secs), 1) if secs else None
        row["mean seconds"] = round(statistics.fmean(secs), 1) if secs else None
        rows.append(row)
    st.subheader("Labels per annotator")
    st.dataframe(render.rows(rows), hide_index=True)

    ag = data.agreement(labels)
    st.subheader("Agreement on overlapped propositions")
    m = st.columns(3)
    m[0].metric("Overlapped propositions", ag.units)
    m[1].metric("Krippendorff's α (true/false)", render.num(ag.alpha_nominal, 3))
    m[2].metric("Krippendorff's α (interval)", render.num(ag.alpha_interval, 3))
    st.caption("α from the `krippendorff` package: 1 = perfect agreement, 0 = chance. Probabilities count as "
               "true above 0.5 and false below it; don't-know and ill-posed answers count as missing."
               + (f" ({ag.note})" if ag.note else ""))
    st.subheader(f"Disagreements to review ({len(ag.disagreements)})")
    if ag.disagreements:
        st.dataframe(render.rows(ag.disagreements), hide_index=True)
    else:
        st.caption("None.")
