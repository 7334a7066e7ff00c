"""Helpers shared by the tests: fakes for in-process tests (fakes.py); a real server for end-to-end ones."""
