class DecryptionError(Exception):
    """A ciphertext failed authentication: tampered, moved to another row or tenant, or its key is
    gone. Never returns garbage: the caller gets this error instead."""
