"""Moving an account between PDSes, and the backups that let a user leave a PDS that is gone.

`flow` runs a migration step by step, `state` remembers the finished steps across runs,
`transfer` copies a repository, its blobs and preferences, `backup` is the export directory,
and `rotation` is the user's own PLC rotation key.
"""
