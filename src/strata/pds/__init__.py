"""The Personal Data Server: accounts, their repositories and blobs, and the firehose."""
