"""The site database's schema (numbered migrations), sample data and synthetic data."""
