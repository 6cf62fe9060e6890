"""The AppView's XRPC methods, one module per app.bsky namespace."""
