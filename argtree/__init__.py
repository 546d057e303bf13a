"""argtree: Bayesian argument trees, exact inference and value of information.

The core (tree, inference, voi, io, expand, datasets) is pure Python + numpy;
models, storage, the UI and training are imported only by the commands that use them.
"""

from .tree import ArgumentTree, Evidence, Node, TreeError

__version__ = "0.1.0"
__all__ = ["ArgumentTree", "Evidence", "Node", "TreeError", "__version__"]
