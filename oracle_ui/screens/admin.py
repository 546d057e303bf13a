"""The admin page (its code is in oracle_ui/views/admin.py)."""
from oracle_ui.views.admin import page

page()
