"""The store: tables, engine and sessions, and the one module that writes papers."""
