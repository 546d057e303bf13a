"""Export page (admin): fine-tuning datasets (``argtree.datasets``) and argtree/1 dumps of the trees."""

from __future__ import annotations

import streamlit as st

from oracle_ui import data


def page() -> None:
    from argtree.datasets import FORMATS, KINDS, DatasetError

    st.title("Export")
    st.subheader("Fine-tuning dataset")
    c = st.columns(3)
    kind = c[0].selectbox("Kind", KINDS, key="exp_kind")
    fmt = c[1].selectbox("Format", FORMATS, index=FORMATS.index("prompt-completion"), key="exp_fmt")
    split = c[2].number_input("Train share (0 = no split)", 0.0, 0.99, 0.0, 0.05, key="exp_split")
    if st.button("Build dataset", key="exp_build", type="primary"):
        try:
            st.session_state["exp_files"] = data.dataset(st.session_state["token"], kind, fmt, split or None)
        except DatasetError as err:
            st.session_state.pop("exp_files", None)
            st.warning(str(err))
    for name, blob in st.session_state.get("exp_files", {}).items():
        st.download_button(f"Download {name} ({len(blob):,} bytes)", blob, file_name=name,
                           mime="application/json", key=f"dl_{name}")
    st.caption("Same records as `argtree export --kind ... --format ...`: split by proposition, with a card.")

    st.subheader("argtree/1 files")
    only = st.checkbox("Only trees with labels", key="exp_only_labeled")
    if st.button("Prepare argtree/1 zip", key="exp_zip"):
        blob, n = data.dump_zip(st.session_state["token"], only)
        st.session_state["exp_zip_blob"] = (blob, n)
    if "exp_zip_blob" in st.session_state:
        blob, n = st.session_state["exp_zip_blob"]
        st.download_button(f"Download {n} tree(s) as argtree/1 ({len(blob):,} bytes)", blob, file_name="trees.zip",
                           mime="application/zip", key="dl_zip")
