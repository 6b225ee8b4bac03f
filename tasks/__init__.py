"""Prefect tasks: thin wrappers around ``cropai`` and ``models`` that add retries,
names and logging. No pixels pass through them, only references."""
