"""A NOTIFY listener: hears each order change after hookline has committed it.

hookline sends a notification on `<schema>_orders` (`hookline_orders`) for each
order it changes, delivered only once that change is committed. Delivery is at
most once: a notification sent while no listener is connected is lost. So on
every (re)connect, after LISTEN, the listener re-reads the orders that changed
since its previous connection started listening, and `handle` must be
idempotent (it may see a change twice, from a notification and from a re-read).

    SHOP_DATABASE_URL=postgresql://shop@db/shop python listener.py
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

# hookline's transactions are short (bounded by its statement timeout): an order
# whose change committed after the previous LISTEN has an updated_at after
# that moment minus this.
CATCH_UP_MARGIN = timedelta(minutes=5)
RECONNECT_SECONDS = 5.0

Change = dict[str, Any]


@dataclass
class OrderListener:
    conninfo: str
    # Gets the notification's JSON, or an order row re-read (`order_id`, `status`,
    # `amount`, `paid_amount`, `refunded_amount`, `currency`).
    handle: Callable[[Change], None]
    schema: str = "hookline"
    # When the previous connection started listening: the next one re-reads from there.
    listening_since: datetime | None = None

    def run_once(
        self,
        *,
        ready: Callable[[], None] | None = None,
        stop_after: int | None = None,
        timeout: float | None = None,
    ) -> None:
        """One connection: LISTEN, catch up, then handle notifications until it drops
        (or after `stop_after` notifications, or `timeout` seconds)."""
        with psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row) as connection:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"{self.schema}_orders")))
            now = connection.execute("SELECT now() AS now").fetchone()
            assert now is not None
            previous, self.listening_since = self.listening_since, now["now"]
            if ready is not None:
                ready()
            if previous is not None:
                self._catch_up(connection, previous)
            for notification in connection.notifies(stop_after=stop_after, timeout=timeout):
                change = json.loads(notification.payload)
                if not change.get("truncated"):
                    self.handle(change)
                elif "order_id" in change:
                    # Too long to send whole: the order row says the rest.
                    self._read(connection, "id = %s", change["order_id"])
                else:
                    self._catch_up(connection, now["now"])

    def run_forever(self) -> None:
        while True:
            try:
                self.run_once()
            except psycopg.OperationalError as error:
                print(f"listener disconnected ({error}); reconnecting")
                time.sleep(RECONNECT_SECONDS)

    def _catch_up(self, connection: psycopg.Connection[Any], since: datetime) -> None:
        self._read(connection, "updated_at >= %s", since - CATCH_UP_MARGIN)

    def _read(
        self, connection: psycopg.Connection[Any], where: LiteralString, value: object
    ) -> None:
        query = sql.SQL(
            "SELECT id AS order_id, status, amount, paid_amount, refunded_amount, currency"
            " FROM {}.orders WHERE {} ORDER BY updated_at"
        ).format(sql.Identifier(self.schema), sql.SQL(where))
        for row in connection.execute(query, (value,)):
            self.handle(row)


def print_change(change: Change) -> None:
    print(f"order {change['order_id']} is {change['status']}")


def main() -> None:
    OrderListener(
        os.environ["SHOP_DATABASE_URL"],
        print_change,
        schema=os.environ.get("HOOKLINE_SCHEMA", "hookline"),
    ).run_forever()


if __name__ == "__main__":
    main()
