"""The consumer: SQS FIFO batches → one PostgreSQL transaction per event."""
