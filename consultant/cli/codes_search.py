"""`consultant codes search WORDS`."""
