"""The agreement page (its code is in oracle_ui/views/agreement.py)."""
from oracle_ui.views.agreement import page

page()
