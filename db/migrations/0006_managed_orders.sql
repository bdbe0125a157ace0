-- An order a provider that is the order system created itself (WooCommerce:
-- hookline.payments.ensure_order) names that provider; one the shop created is
-- NULL. Only a managed order follows the provider's later total and currency
-- (an order edited before payment); the shop's own keeps its amount, so a
-- payment that differs from it stays an amount mismatch.
ALTER TABLE orders ADD COLUMN managed_by text;
