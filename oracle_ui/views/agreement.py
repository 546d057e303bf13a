"""Agreement page (admin): labels per annotator, time per answer, Krippendorff's alpha, disagreements."""

from __future__ import annotations

import statistics

import streamlit as st

from oracle_ui import data, render


def page() -> None:
    st.title("Agreement")
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
