SELECT date_trunc('day', created_at) AS day, sum(total_cents) / 100.0 AS revenue
FROM orders GROUP BY 1 ORDER BY 1;
