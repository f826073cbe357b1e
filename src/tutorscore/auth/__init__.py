"""Users, roles, passwords, API tokens, login throttling and the audit log.

Framework-free: the web layer (tutorscore.web.deps) and the CLI adapt these.
"""
