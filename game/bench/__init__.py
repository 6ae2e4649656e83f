"""The measuring tools."""
