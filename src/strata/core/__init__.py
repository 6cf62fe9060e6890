"""The pure protocol core: syntax, data model, CAR, crypto, MST, repo commits, lexicons.

Nothing in this package touches the network or the disk.
"""
