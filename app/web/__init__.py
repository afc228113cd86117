"""The web layer: routers by audience (pages, the JSON API, feeds) and their shared deps."""
