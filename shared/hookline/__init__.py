"""hookline: verified, exactly-once webhook ingestion into PostgreSQL."""

__version__ = "0.1.0"
