import os
import sys

# Tests import helper modules (reference.py, strategies.py) from this folder.
sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings

# HYPOTHESIS_PROFILE=deep runs many more random trees (a few minutes) when hunting bugs.
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
