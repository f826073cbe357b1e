"""Session evaluation: judges (heuristic, LLM), job queue and worker, cost ledger."""
