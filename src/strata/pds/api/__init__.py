"""The PDS's XRPC methods, one module per lexicon namespace."""
