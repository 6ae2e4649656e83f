"""Test doubles and helpers shared by the test files (never imported by the product)."""
