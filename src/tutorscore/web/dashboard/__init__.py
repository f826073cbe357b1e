"""Dashboard page routers, one module per page group, each exposing `router`."""
