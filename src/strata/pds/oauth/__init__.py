"""The PDS as an OAuth authorization server and resource server, in the atproto profile:
discovery documents, pushed authorization requests, PKCE, DPoP-bound tokens, client metadata
documents, a sign-in and consent page, refresh token rotation and revocation."""
