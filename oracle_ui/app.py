"""Entry point of the oracle's web app: ``argtree ui`` runs ``streamlit run`` on this file.

It is an ``st.App`` (Streamlit's ASGI app): the Streamlit pages (``main.py``) plus the HTTP
login routes and the session gate of ``oracle_ui.web``, which set and check the HttpOnly
session cookie (a websocket cannot set cookies).  ``streamlit run`` finds ``app`` below and
serves it with uvicorn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

# `streamlit run` puts only this folder on sys.path; in a checkout the package lives one level up.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from oracle_ui.web import ROUTES, SessionGate  # noqa: E402

app = st.App(Path(__file__).with_name("main.py"), routes=ROUTES, middleware=[Middleware(SessionGate)])
