"""Command-line tools for people who handle repositories, keys and accounts."""
