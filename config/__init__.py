"""The documented defaults (collector.toml), shipped inside the package as ``collector.defaults``."""
