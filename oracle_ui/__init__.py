"""The oracle's web app (Streamlit): ``argtree ui`` runs ``oracle_ui/app.py``.

``app.py`` is an ``st.App``: the Streamlit pages (``main.py``, ``views/``) plus the HTTP login
routes and session gate of ``web.py`` (an HttpOnly cookie; sessions live in the database).
Pages hold widgets and layout only; everything they read or write goes through
``oracle_ui.data`` (a thin layer over ``argtree.store.webui``, which checks the session on every
call), and model text is always shown as plain, visible text (``oracle_ui.render``).
"""
