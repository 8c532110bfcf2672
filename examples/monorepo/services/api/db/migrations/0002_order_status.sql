ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
CREATE INDEX orders_status ON orders (status);
