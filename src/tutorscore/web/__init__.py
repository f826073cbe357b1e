"""Web adapter: JSON API and server-rendered dashboard over the domain packages."""
