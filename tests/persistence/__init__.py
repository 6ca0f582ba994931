"""Tests of the store: the write path, running totals, start-up queries, migration and retention."""
