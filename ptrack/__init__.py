"""ptrack: find, follow and pick the people in a video."""

__version__ = "0.1.0"
