"""The receiver: verify a provider's request, queue its envelope, answer."""
