"""cbgate: a self-hosted gateway serving the CloudBase AI model API."""

__version__ = "0.1.0"
