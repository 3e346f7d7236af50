"""groovecast engine: audio in, beats and features, dance models, poses out."""

__version__ = "0.1.0"
