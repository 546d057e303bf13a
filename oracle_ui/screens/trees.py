"""The trees page (its code is in oracle_ui/views/trees.py)."""
from oracle_ui.views.trees import page

page()
