"""The store: one SQLite file, one writer thread, and the SQL of each table in its own module."""
