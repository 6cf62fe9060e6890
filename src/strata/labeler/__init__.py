"""A labeler: signed labels on accounts and records, served to AppViews, and reports received."""
