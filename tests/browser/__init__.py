"""Browser tests: a real `tutorscore serve` driven through the system Chromium."""
