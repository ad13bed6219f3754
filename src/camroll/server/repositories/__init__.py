"""Database access: small functions over a ``Session``; no rules, no HTTP."""
