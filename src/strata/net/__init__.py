"""HTTP plumbing shared by every service: the error envelope, health and metrics endpoints,
outbound calls through an upstream pool, and structured logs."""
