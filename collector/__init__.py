"""jex-collector: collect JEX options market data into PostgreSQL."""

__version__ = "0.1.0"
