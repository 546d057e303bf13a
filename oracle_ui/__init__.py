"""The oracle's web app (Streamlit): ``argtree ui`` runs ``oracle_ui/app.py``.

Pages hold widgets and layout only; everything they read or write goes
through ``oracle_ui.data`` (a thin layer over ``argtree.store``), and model
text is always shown as plain text (``oracle_ui.render``).
"""
