-- The fleet store's first schema (SQLite). Released: never edit, add 0002_*.sql instead.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, received_at REAL,
  created_at REAL, window_start REAL, window_end REAL, part_index INTEGER, part_count INTEGER,
  component_version TEXT, model_name TEXT, variant TEXT, model_sha256 TEXT, payload TEXT,
  UNIQUE (thing, seq));
CREATE TABLE IF NOT EXISTS devices (
  thing TEXT PRIMARY KEY, first_seen REAL, last_seen REAL, hello_seq INTEGER, target TEXT,
  bundle TEXT, variant TEXT, component_version TEXT, model_sha256 TEXT, cpu TEXT, hello TEXT);
CREATE TABLE IF NOT EXISTS metrics (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, window_start REAL, window_end REAL, model_name TEXT,
  variant TEXT, component_version TEXT, requests INTEGER, ok INTEGER, errors INTEGER,
  rows INTEGER, requests_per_s REAL, p50 REAL, p90 REAL, p99 REAL, latency TEXT, compute TEXT,
  cpu_percent REAL, rss_bytes REAL, outbox_pending INTEGER, outbox_dropped INTEGER,
  PRIMARY KEY (thing, seq));
CREATE INDEX IF NOT EXISTS metrics_time ON metrics (window_end);
CREATE TABLE IF NOT EXISTS drift (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, window_end REAL, model_name TEXT, block TEXT,
  PRIMARY KEY (thing, seq));
CREATE INDEX IF NOT EXISTS drift_time ON drift (window_end);
CREATE TABLE IF NOT EXISTS bench (
  thing TEXT NOT NULL, seq INTEGER NOT NULL, t REAL, model_name TEXT, variant TEXT,
  record TEXT, PRIMARY KEY (thing, seq, variant));
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL, source TEXT, thing TEXT, seq INTEGER,
  rule TEXT, state TEXT, severity TEXT, message TEXT, subject TEXT, value REAL,
  threshold REAL, detail TEXT);
CREATE TABLE IF NOT EXISTS actions (
  alert_id INTEGER, t REAL, action TEXT, ok INTEGER, detail TEXT);
CREATE TABLE IF NOT EXISTS deployments (
  deployment_id TEXT NOT NULL, thing TEXT NOT NULL, status TEXT, detailed_status TEXT,
  reason TEXT, started_at REAL, duration_s REAL, versions TEXT, components TEXT,
  PRIMARY KEY (deployment_id, thing));
CREATE TABLE IF NOT EXISTS rejects (received_at REAL, topic TEXT, error TEXT, head TEXT);
