SELECT customer, count(*) AS orders FROM orders GROUP BY 1 ORDER BY 2 DESC LIMIT 20;
