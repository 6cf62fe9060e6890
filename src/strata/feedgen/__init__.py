"""A feed generator service: its own firehose index and the feeds it computes from it.

`strata.feedgen.algorithm` is the interface for writing a feed; `strata.feedgen.feeds` holds the
built-in ones (`hot`, `lang-<code>`, `following`).
"""
