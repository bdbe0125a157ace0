// A NOTIFY listener with node-postgres and Drizzle ORM.
//
//   SHOP_DATABASE_URL=postgresql://shop@db/shop node listener.mjs [--count N]
//
// hookline notifies `<schema>_orders` (`hookline_orders`) for each order it
// changes, delivered only once the change is committed, and at most once: a
// notification sent while no listener is connected is lost. So on every
// (re)connect, after LISTEN, it re-reads the orders changed since the previous
// connection started listening, and `handle` must be idempotent.
import { pathToFileURL } from "node:url";

import { eq, gte } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";

import { hooklineTables } from "./schema.mjs";

// hookline's transactions are short: a change committed after the previous
// LISTEN has an updated_at after that moment minus this.
const CATCH_UP_MARGIN_MS = 5 * 60 * 1000;
const RECONNECT_MS = 5000;

export class OrderListener {
  constructor({ connectionString, schema = "hookline", handle }) {
    this.connectionString = connectionString;
    this.schema = schema;
    this.handle = handle;
    this.hookline = hooklineTables(schema);
    // When the previous connection started listening: the next one re-reads from there.
    this.listeningSince = null;
  }

  // One connection: resolves when it ends (an error, or `stop()`).
  async runOnce({ ready } = {}) {
    const client = new pg.Client({ connectionString: this.connectionString });
    this.client = client;
    const ended = new Promise((resolve) => {
      client.on("error", resolve);
      client.on("end", resolve);
    });
    await client.connect();
    const db = drizzle({ client });
    client.on("notification", (message) => {
      const change = JSON.parse(message.payload);
      if (!change.truncated) {
        this.handle(change);
      } else if (change.order_id !== undefined) {
        // Too long to send whole: the order row says the rest.
        this.#read(db, eq(this.hookline.orders.id, change.order_id));
      } else {
        this.#catchUp(db, this.listeningSince);
      }
    });
    await client.query(`LISTEN ${client.escapeIdentifier(`${this.schema}_orders`)}`);
    const { rows } = await client.query("SELECT now() AS now");
    const previous = this.listeningSince;
    this.listeningSince = rows[0].now;
    ready?.();
    if (previous !== null) {
      await this.#catchUp(db, previous);
    }
    await ended;
  }

  async runForever() {
    for (;;) {
      try {
        await this.runOnce();
      } catch (error) {
        console.error(`listener disconnected (${error.message}); reconnecting`);
      }
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  async stop() {
    await this.client?.end();
  }

  async #catchUp(db, since) {
    await this.#read(
      db,
      gte(this.hookline.orders.updatedAt, new Date(since.getTime() - CATCH_UP_MARGIN_MS)),
    );
  }

  async #read(db, where) {
    const orders = this.hookline.orders;
    const rows = await db
      .select({
        order_id: orders.id,
        status: orders.status,
        amount: orders.amount,
        paid_amount: orders.paidAmount,
        refunded_amount: orders.refundedAmount,
        currency: orders.currency,
      })
      .from(orders)
      .where(where)
      .orderBy(orders.updatedAt);
    rows.forEach((row) => this.handle(row));
  }
}

async function main() {
  const countFlag = process.argv.indexOf("--count");
  const count = countFlag === -1 ? Infinity : Number(process.argv[countFlag + 1]);
  let seen = 0;
  const listener = new OrderListener({
    connectionString: process.env.SHOP_DATABASE_URL,
    schema: process.env.HOOKLINE_SCHEMA ?? "hookline",
    handle: (change) => {
      console.log(JSON.stringify(change));
      seen += 1;
      if (seen >= count) {
        listener.stop();
      }
    },
  });
  if (count === Infinity) {
    await listener.runForever();
  } else {
    await listener.runOnce({ ready: () => console.log(JSON.stringify({ listening: true })) });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
