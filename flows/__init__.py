"""Prefect flows: the recipes operators schedule and rerun (ingest, analyze, train)."""
