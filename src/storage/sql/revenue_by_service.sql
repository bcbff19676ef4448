-- Period $1 by service: events from the usage, amounts from the invoice lines (usage
-- charges and allowance credits), so the amounts add up as on the invoices. Voice, SMS,
-- data first, in that order.
WITH ev AS (SELECT record_type AS service, count(*) AS events
              FROM usage_events WHERE period = $1 GROUP BY 1),
     li AS (SELECT l.service,
                   COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'usage'), 0) AS usage,
                   COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'allowance'), 0) AS allowances
              FROM invoice_lines l JOIN invoices i USING (number)
             WHERE i.period = $1 AND l.service IS NOT NULL GROUP BY 1)
SELECT COALESCE(ev.service, li.service), COALESCE(ev.events, 0),
       COALESCE(li.usage, 0), COALESCE(li.allowances, 0)
  FROM ev FULL JOIN li ON li.service = ev.service
 ORDER BY array_position(ARRAY['voice', 'sms', 'data'], COALESCE(ev.service, li.service)), 1
