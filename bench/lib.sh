# The set-up the benchmark scripts share: the binary to measure and the
# databases and homes they measure it on. Sourced by bench/noop,
# bench/upgrade, bench/backup and bench/compare (which measures two
# binaries on the same set-up), from the repository's root; never run.

bench_releases=example-hooks/app/releases

# bench_uplift: prints the binary to measure: $UPLIFT when set, otherwise
# the release build, built (or brought up to date) here.
bench_uplift() {
  if [ -n "${UPLIFT:-}" ]; then
    echo "$UPLIFT"
    return
  fi
  cargo build --quiet --release -p uplift >&2
  echo "${CARGO_TARGET_DIR:-target}/release/uplift"
}

bench_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# bench_need_hyperfine: installs hyperfine (Debian package) when missing.
bench_need_hyperfine() {
  command -v hyperfine >/dev/null && return
  bench_as_root apt-get install -y -qq hyperfine >/dev/null ||
    { bench_as_root apt-get update -qq && bench_as_root apt-get install -y -qq hyperfine >/dev/null; }
}

# bench_need_time: checks for /usr/bin/time (peak RSS of a command).
bench_need_time() {
  [ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
}

# bench_noop_home UPLIFT HOME: a home of the example application whose
# data is already at release 1.0.0, so that `uplift upgrade` has nothing
# to do: the no-op path.
bench_noop_home() {
  "$1" --quiet --home "$2" --release "$bench_releases/1.0.0" upgrade
}

# bench_learnhub_home UPLIFT HOME SIZE_MB: a learnhub home at release 0.6.4
# whose database is about SIZE_MB megabytes (generated here, no downloads),
# ready for the upgrade to 1.0.0 that bench/upgrade measures.
bench_learnhub_home() {
  local uplift=$1 home=$2 size_mb=$3
  # ~140 bytes a learner row with its index entries, ~40 a progress row.
  local learners=$(( size_mb * 1024 * 1024 / 220 ))
  "$uplift" --quiet --home "$home" --release "$bench_releases/0.6.4" upgrade
  sqlite3 "$home/db.sqlite3" >/dev/null <<SQL
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
BEGIN;
INSERT INTO facility (id, name) SELECT value, 'Facility ' || value FROM generate_series(1, 50);
INSERT INTO lesson (id, facility_id, title, created)
  SELECT value, 1 + value % 50, 'Lesson ' || value, '2021-01-01' FROM generate_series(1, 400);
INSERT INTO learner (id, facility_id, username, joined, email)
  SELECT value, 1 + value % 50, 'learner-' || value || '-' || hex(randomblob(24)), date('2019-01-01', '+' || (value % 900) || ' days'),
         CASE WHEN value % 3 = 0 THEN 'l' || value || '@mail.example' END
  FROM generate_series(1, $learners);
INSERT OR IGNORE INTO progress (learner_id, lesson_id, score)
  SELECT 1 + (value * 7) % $learners, 1 + value % 400, CAST(value % 101 AS TEXT) FROM generate_series(1, $learners / 2);
COMMIT;
SQL
  echo "database: $(( $(stat -c %s "$home/db.sqlite3") / 1024 / 1024 )) MB at 0.6.4 ($learners learners)" >&2
}

# bench_warm_cache UPLIFT HOME: fills HOME's compile cache with UPLIFT's
# compilations of the 1.0.0 release's plugins, as any second run of that
# binary would find it, by upgrading a small home of its own. The cache is
# per binary: an entry is keyed by the engine, and storing one removes
# another build's.
bench_warm_cache() {
  local uplift=$1 home=$2 scratch
  scratch=$(mktemp -d)
  "$uplift" --quiet --home "$scratch" --release "$bench_releases/0.6.4" upgrade
  "$uplift" --quiet --home "$scratch" --release "$bench_releases/1.0.0" upgrade 2>/dev/null
  rm -rf "$home/cache"
  cp -r "$scratch/cache" "$home/cache"
  rm -rf "$scratch"
}

# bench_mixed_db DB SIZE_MB: a database of about SIZE_MB megabytes of
# mixed types (integers, reals, text with quotes and newlines, blobs, rowid
# tables with and without an INTEGER PRIMARY KEY, several indexes), the one
# bench/backup dumps and restores. Kept if DB exists.
bench_mixed_db() {
  local db=$1 size_mb=$2
  [ -f "$db" ] && return
  # About 780 bytes of database per customer, with their orders and events.
  local customers=$(( size_mb * 1310 ))
  mkdir -p "$(dirname "$db")"
  echo "generating a ~${size_mb} MB database ($customers customers) in $db" >&2
  sqlite3 "$db" >/dev/null <<SQL
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
CREATE TABLE uplift_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO uplift_meta VALUES ('data_version', '1.0'), ('app', 'bench');
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                       balance REAL, joined TEXT, notes TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers(id),
                    qty INTEGER, price REAL, status TEXT, payload BLOB);
CREATE TABLE events(at REAL, kind TEXT, detail TEXT);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $customers)
INSERT INTO customers
SELECT i, 'Customer ' || i || ' O''Brien', 'user' || i || '@example.com',
       (abs(random()) % 10000000) / 100.0, date('2020-01-01', '+' || (i % 1500) || ' days'),
       CASE WHEN i % 5 = 0 THEN 'first line' || char(10) || 'second; with ''quotes'' and "double"' END
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $customers * 4)
INSERT INTO orders
SELECT i, (i - 1) / 4 + 1, abs(random()) % 1000 - 10, random() / 1e12,
       CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'returned' END,
       randomblob(abs(random()) % 120)
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $customers * 2)
INSERT INTO events
SELECT 2460000 + i / 86400.0, 'kind-' || (i % 17), hex(randomblob(12)) FROM c;
COMMIT;
CREATE UNIQUE INDEX customers_email ON customers(email);
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_status_price ON orders(status, price);
CREATE INDEX events_at ON events(at);
SQL
}
