"""Test support shipped with the package: fake LLM server, database helpers."""
