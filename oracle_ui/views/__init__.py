"""One module per page of the oracle app."""
