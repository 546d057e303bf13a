"""The login page (its code is in oracle_ui/views/login.py)."""
from oracle_ui.views.login import page

page()
