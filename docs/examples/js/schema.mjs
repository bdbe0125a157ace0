// The tables the shop's code touches, for Drizzle ORM: the shop's own (schema
// public, docs/examples/shop_schema.sql) and hookline's orders (its own schema).
import {
  bigint,
  integer,
  pgSchema,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

export const orders = pgTable("orders", {
  id: uuid("id").primaryKey(),
  customerEmail: text("customer_email").notNull(),
  totalCents: bigint("total_cents", { mode: "number" }).notNull(),
  currency: text("currency").notNull(),
  // Kept in step by the shop's order callback, never by the checkout.
  paymentStatus: text("payment_status").notNull().default("unpaid"),
  paidAt: timestamp("paid_at", { withTimezone: true }),
});

export const orderItems = pgTable(
  "order_items",
  {
    orderId: uuid("order_id")
      .notNull()
      .references(() => orders.id),
    sku: text("sku").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceCents: bigint("unit_price_cents", { mode: "number" }).notNull(),
  },
  (table) => [primaryKey({ columns: [table.orderId, table.sku] })],
);

// hookline's orders, in the stack's DATABASE_SCHEMA (`hookline` unless set).
// The shop inserts id, amount (minor units) and currency; hookline owns the rest.
export function hooklineTables(schemaName = "hookline") {
  const schema = pgSchema(schemaName);
  return {
    orders: schema.table("orders", {
      id: text("id").primaryKey(),
      amount: bigint("amount", { mode: "number" }).notNull(),
      currency: text("currency").notNull(),
      status: text("status"),
      paidAmount: bigint("paid_amount", { mode: "number" }),
      refundedAmount: bigint("refunded_amount", { mode: "number" }),
      updatedAt: timestamp("updated_at", { withTimezone: true }),
    }),
  };
}
