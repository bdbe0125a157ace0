// Checkout with Drizzle ORM: the shop's order and hookline's, in one transaction.
//
//   SHOP_DATABASE_URL=postgresql://shop@db/shop node checkout.mjs a@example.com tee-black-m:2:1500
//
// Prints {"order_id": ..., "amount": ...}; then ask the provider for the payment,
// naming the order where hookline reads it back, e.g. with Stripe:
//   stripe.paymentIntents.create({ amount, currency, metadata: { order_id } })
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";

import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";

import { hooklineTables, orderItems, orders } from "./schema.mjs";

export async function placeOrder(db, hookline, { customerEmail, items, currency }) {
  const id = randomUUID();
  const amount = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
  await db.transaction(async (tx) => {
    await tx.insert(orders).values({ id, customerEmail, totalCents: amount, currency });
    await tx.insert(orderItems).values(items.map((item) => ({ orderId: id, ...item })));
    // hookline's order: id as text, amount in minor units, currency (any case).
    await tx.insert(hookline.orders).values({ id, amount, currency });
  });
  return { order_id: id, amount };
}

async function main() {
  const [customerEmail, ...lines] = process.argv.slice(2);
  const items = lines.map((line) => {
    const [sku, quantity, unitPriceCents] = line.split(":");
    return { sku, quantity: Number(quantity), unitPriceCents: Number(unitPriceCents) };
  });
  const pool = new pg.Pool({ connectionString: process.env.SHOP_DATABASE_URL });
  try {
    const db = drizzle({ client: pool });
    const hookline = hooklineTables(process.env.HOOKLINE_SCHEMA ?? "hookline");
    const placed = await placeOrder(db, hookline, { customerEmail, items, currency: "usd" });
    console.log(JSON.stringify(placed));
  } finally {
    await pool.end();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
