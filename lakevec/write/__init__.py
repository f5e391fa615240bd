"""The write path: validate -> fragment -> commit."""
