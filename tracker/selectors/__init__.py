"""Page reads: one module per page or section, returning dataclasses for the templates."""
