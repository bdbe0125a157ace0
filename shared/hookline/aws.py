"""boto3 client settings shared by every function."""

from __future__ import annotations

from botocore.config import Config

# Short timeouts and bounded retries: API Gateway gives up after 30 s, and a
# provider that gets a quick 503 retries sooner than one that times out; the
# consumer's failed records go back to SQS rather than waiting here.
CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
)
