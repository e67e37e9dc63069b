-- Per-device rollups kept at ingest, so `fleet report` reads thousands of rows, not millions:
-- thing_stats (messages, seq range and window span per device and type; additive in SQL) and
-- latency_rollup (windows, requests, errors and the merged latency histogram per device and
-- variant; histograms merge in Python, see toolkit/fleet/rollup.py).
CREATE TABLE IF NOT EXISTS thing_stats (
  thing TEXT NOT NULL, type TEXT NOT NULL, messages BIGINT NOT NULL, min_seq BIGINT,
  max_seq BIGINT, first_window DOUBLE PRECISION, last_window DOUBLE PRECISION,
  PRIMARY KEY (thing, type));
CREATE TABLE IF NOT EXISTS latency_rollup (
  thing TEXT NOT NULL, variant TEXT NOT NULL, windows BIGINT NOT NULL,
  requests BIGINT NOT NULL, errors BIGINT NOT NULL, rps_sum DOUBLE PRECISION NOT NULL,
  latency TEXT,
  PRIMARY KEY (thing, variant));
INSERT INTO thing_stats (thing, type, messages, min_seq, max_seq, first_window, last_window)
  SELECT thing, type, COUNT(*), MIN(seq), MAX(seq), MIN(window_start), MAX(window_end)
  FROM messages GROUP BY thing, type;
-- histograms cannot be summed in SQL: a store with metrics rebuilds latency_rollup on open
INSERT INTO meta (key, value) SELECT 'rebuild_latency_rollup', '1'
  WHERE EXISTS (SELECT 1 FROM metrics) ON CONFLICT (key) DO NOTHING;
