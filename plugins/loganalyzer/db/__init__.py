"""PostgreSQL adapters: connecting, creating the database, applying the sql/ migrations."""
