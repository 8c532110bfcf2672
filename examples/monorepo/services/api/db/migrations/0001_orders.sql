CREATE TABLE orders (
  id         BIGSERIAL PRIMARY KEY,
  customer   TEXT NOT NULL,
  total_cents INTEGER NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
