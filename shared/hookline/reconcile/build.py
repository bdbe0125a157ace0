"""Wiring ReconcilerFunction's dependencies once per container."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from hookline import status
from hookline.aws import CLIENT_CONFIG
from hookline.consumer.build import build_database, database_conninfo
from hookline.reconcile.reconciler import Reconciler
from hookline.reconcile.redrive import Redriver
from hookline.settings import ReconcilerSettings


def build_reconciler(settings: ReconcilerSettings) -> Reconciler:
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=CLIENT_CONFIG))
    sqs = boto3.client("sqs", config=CLIENT_CONFIG)
    conninfo = database_conninfo(settings, secrets)
    return Reconciler(
        build_database(settings, secrets, "hookline-reconciler"),
        lambda park: Redriver(
            sqs, settings.queue_url, settings.dlq_url, settings.max_redrives, park
        ),
        lambda: status.Target(
            "deployed",
            {"EventsQueue": settings.queue_url, "EventsDLQ": settings.dlq_url},
            sqs,
            conninfo(),
        ),
        orphan_deadline=timedelta(hours=settings.orphan_deadline_hours),
        retention_days=settings.retention_days,
    )


@cache
def reconciler() -> Reconciler:
    """Built on first use and kept for the container's life."""
    return build_reconciler(ReconcilerSettings.from_env())
