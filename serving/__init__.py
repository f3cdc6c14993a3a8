"""The REST API over the analyzer's results (FastAPI over PostgreSQL)."""
