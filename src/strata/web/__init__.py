"""The browser client: static pages that talk XRPC to the user's PDS, and the operator
dashboard's view of the node's services."""
