"""The PLC directory service (`strata plc`): accepts and serves did:plc operation logs, either
as a primary directory or as a verifying mirror of others."""
