"""Metadata in SQL: table classes, the engine, and one module of queries per resource."""
