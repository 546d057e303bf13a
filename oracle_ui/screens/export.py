"""The export page (its code is in oracle_ui/views/export.py)."""
from oracle_ui.views.export import page

page()
