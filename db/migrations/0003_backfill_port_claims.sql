-- Claims for the endpoints made before claims existed (hand-written: keep it when regenerating).
-- On each port the oldest endpoint decides the mode. An endpoint whose claims cannot all be made
-- (two deploys raced for one port before the database refused that) is removed with an event: the
-- edge refused every snapshot that held both, so neither was served.
INSERT INTO "port_modes" ("address", "port", "mode")
SELECT DISTINCT ON ("port") '*', "port", CASE WHEN "tls" = 'passthrough' THEN 'tls' ELSE 'tcp' END
FROM "endpoints"
WHERE jsonb_array_length("bindings") = 0
ORDER BY "port", "created_at", "id"
ON CONFLICT DO NOTHING;
--> statement-breakpoint
INSERT INTO "port_modes" ("address", "port", "mode")
SELECT DISTINCT ON (b.address, e."port") b.address, e."port", CASE WHEN e."tls" = 'passthrough' THEN 'tls' ELSE 'tcp' END
FROM "endpoints" e CROSS JOIN LATERAL jsonb_array_elements_text(e."bindings") AS b(address)
ORDER BY b.address, e."port", e."created_at", e."id"
ON CONFLICT DO NOTHING;
--> statement-breakpoint
CREATE TEMPORARY TABLE "wanted_claims" AS
SELECT a.address, e."port", n.name, CASE WHEN e."tls" = 'passthrough' THEN 'tls' ELSE 'tcp' END AS mode, e."app_id", e."id" AS endpoint_id, e."created_at"
FROM "endpoints" e
CROSS JOIN LATERAL (
  SELECT '*' AS address WHERE jsonb_array_length(e."bindings") = 0
  UNION SELECT x FROM jsonb_array_elements_text(e."bindings") AS x
) a
CROSS JOIN LATERAL (
  SELECT '' AS name WHERE e."tls" <> 'passthrough'
  UNION SELECT lower(x) FROM jsonb_array_elements_text(e."sni") AS x WHERE e."tls" = 'passthrough'
  UNION SELECT '*' WHERE e."tls" = 'passthrough' AND e."sni_default"
) n;
--> statement-breakpoint
INSERT INTO "port_claims" ("address", "port", "name", "mode", "app_id", "endpoint_id")
SELECT w.address, w."port", w.name, w.mode, w."app_id", w.endpoint_id
FROM "wanted_claims" w
WHERE EXISTS (SELECT 1 FROM "port_modes" m WHERE m."address" = w.address AND m."port" = w."port" AND m."mode" = w.mode)
ORDER BY w."created_at", w.endpoint_id
ON CONFLICT DO NOTHING;
--> statement-breakpoint
WITH "short" AS (
  SELECT w.endpoint_id FROM "wanted_claims" w
  WHERE NOT EXISTS (SELECT 1 FROM "port_claims" c WHERE c."endpoint_id" = w.endpoint_id AND c."address" = w.address AND c."port" = w."port" AND c."name" = w.name)
  GROUP BY w.endpoint_id
), "removed" AS (
  DELETE FROM "endpoints" e USING "short" s WHERE e."id" = s.endpoint_id
  RETURNING e."id", e."app_id", e."port"
)
INSERT INTO "events" ("org_id", "app_id", "type", "reason", "message", "data")
SELECT a."org_id", r."app_id", 'endpoint.changed', 'port-in-use',
  'endpoint :' || r."port" || ' removed at upgrade: another app held port ' || r."port" || ' first (two deploys raced for it before Pier refused that), and the edge served neither; deploy again with a free port',
  jsonb_build_object('changes', jsonb_build_array(jsonb_build_object('port', r."port", 'change', 'removed')))
FROM "removed" r JOIN "apps" a ON a."id" = r."app_id";
--> statement-breakpoint
DELETE FROM "port_modes" m WHERE NOT EXISTS (SELECT 1 FROM "port_claims" c WHERE c."address" = m."address" AND c."port" = m."port");
--> statement-breakpoint
DROP TABLE "wanted_claims";
