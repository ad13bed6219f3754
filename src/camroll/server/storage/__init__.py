"""Blob stores for verified originals: the interface in ``base``, implementations beside it."""
