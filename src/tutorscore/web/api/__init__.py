"""JSON API routers, one module per domain, each exposing `router`."""
