"""`consultant codes import KIND FILE` and `consultant codes releases`."""
