"""The answer page (its code is in oracle_ui/views/answer.py)."""
from oracle_ui.views.answer import page

page()
