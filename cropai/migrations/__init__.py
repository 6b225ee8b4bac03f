"""Alembic migrations of the Crop AI catalogue (SQLite and PostgreSQL)."""
