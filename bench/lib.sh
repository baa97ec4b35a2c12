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

# bench_app_db DB SIZE_MB: a database of about SIZE_MB megabytes shaped
# like a real application's (the seed's kind, a Django app): 71 tables,
# each with a text primary key of 32 hexadecimal digits (a UUID, so every
# row keeps a rowid of its own), 15 to 25 columns (synchronisation fields,
# ISO timestamps as text, JSON text, foreign keys to other tables' UUIDs,
# a few integers and reals), and 2 to 4 indexes (the primary key's own
# included). A few tables are large, most are small; two names need
# quoting. Deterministic: the same SIZE_MB gives the same rows. Kept if DB
# exists. About 10 s at 200 MB and 30 s at 2 GB on the development machine.
bench_app_db() {
  local db=$1 size_mb=$2
  [ -f "$db" ] && return
  mkdir -p "$(dirname "$db")"
  local tables=71 t
  # Rows of table t: a weight (20 for every tenth table, 4 for every
  # third, 1 otherwise) times a unit; about 900 bytes of database a row.
  local -a rows weight
  local total_weight=0
  for (( t = 0; t < tables; t++ )); do
    if (( t % 10 == 0 && t > 0 )); then weight[t]=20
    elif (( t % 3 == 0 )); then weight[t]=4
    else weight[t]=1; fi
    total_weight=$(( total_weight + weight[t] ))
  done
  local unit=$(( size_mb * 1000 * 1000 / 900 / total_weight ))
  (( unit > 0 )) || unit=1
  for (( t = 0; t < tables; t++ )); do rows[t]=$(( weight[t] * unit )); done
  echo "generating a ~${size_mb} MB application-shaped database ($tables tables, $(( total_weight * unit )) rows) in $db" >&2

  # uuid T I: SQL for the UUID of row I of table T (distinct for every row
  # of a table: the first word is a bijection of I modulo 2^32).
  uuid() {
    echo "printf('%08x%08x%08x%08x', ($2 * 2654435761 + $1 * 40503) % 4294967296, ($2 * 2246822519 + $1 * 97) % 4294967296, (($2 + $1) * 3266489917) % 4294967296, ($2 * 668265263 + $1 * 374761393) % 4294967296)"
  }
  # when S: SQL for an ISO timestamp with microseconds, S seconds into 2020.
  when() {
    echo "datetime(1577836800 + ($1) % 94608000, 'unixepoch') || printf('.%06d', ($1 * 104729) % 1000000)"
  }
  name() {
    case $1 in
      7) echo '"group"' ;;
      23) echo '"order"' ;;
      *) echo "app$(( $1 % 6 ))_model$1" ;;
    esac
  }
  {
    echo "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;"
    echo "CREATE TABLE uplift_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    echo "INSERT INTO uplift_meta VALUES ('data_version', '1.0'), ('app', 'bench-app');"
    echo "BEGIN;"
    for (( t = 0; t < tables; t++ )); do
      local n parent cols values extra k i
      n=$(name "$t")
      parent=$(( t / 3 ))
      i=value
      cols="id TEXT PRIMARY KEY NOT NULL, _morango_dirty_bit INTEGER NOT NULL, _morango_source_id TEXT NOT NULL,
        _morango_partition TEXT NOT NULL, dataset_id TEXT NOT NULL REFERENCES app0_model0(id),
        parent_id TEXT REFERENCES $(name "$parent")(id), created TEXT NOT NULL, modified TEXT NOT NULL,
        status TEXT NOT NULL, extra_fields TEXT NOT NULL"
      values="$(uuid "$t" "$i"), ($i % 7 = 0), $(uuid 900 "($i % 500)") || '+' || ($i % 3),
        $(uuid 901 "($i % 5)") || ':user-rw:' || $(uuid 902 "($i % 1000)"), $(uuid 0 "(1 + $i % ${rows[0]})"),
        CASE WHEN $t = 0 OR $i % 10 = 0 THEN NULL ELSE $(uuid "$parent" "(1 + ($i * 7919) % ${rows[parent]})") END,
        $(when "$i * 7919 + $t"), $(when "$i * 7919 + $t + 86400 * ($i % 30)"),
        CASE $i % 4 WHEN 0 THEN 'active' WHEN 1 THEN 'archived' WHEN 2 THEN 'draft' ELSE 'pending' END,
        json_object('version', $i % 5, 'tags', json_array('tag-' || ($i % 13), 'tag-' || ($i % 7)),
                    'label', 'Item ' || $i || ' of table $t', 'flags', json_object('visible', json(CASE WHEN $i % 2 = 0 THEN 'true' ELSE 'false' END)))"
      # 5 to 15 more columns, cycling through kinds.
      extra=$(( 5 + t % 11 ))
      for (( k = 0; k < extra; k++ )); do
        case $(( (k + t) % 8 )) in
          0) cols+=", title_$k TEXT NOT NULL"; values+=", 'Title of item ' || $i || ' in table $t'" ;;
          1) cols+=", sort_$k INTEGER"; values+=", ($i * 31 + $k) % 100000" ;;
          2) cols+=", ref_$k TEXT"; values+=", $(uuid "$(( 100 + k ))" "$i")" ;;
          3) cols+=", at_$k TEXT"; values+=", CASE WHEN $i % 3 = 0 THEN NULL ELSE $(when "$i * 104729 + $k") END" ;;
          4) cols+=", progress_$k REAL"; values+=", ($i % 101) / 100.0" ;;
          5) cols+=", description_$k TEXT"; values+=", CASE WHEN $i % 5 < 3 THEN NULL ELSE 'A description of ' || $i || ', it''s long enough to matter: ' || substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod', 1 + $i % 20) END" ;;
          6) cols+=", done_$k INTEGER NOT NULL"; values+=", ($i + $k) % 2" ;;
          7) cols+=", data_$k TEXT NOT NULL"; values+=", json_object('kind', 'kind-' || ($i % 9), 'n', $i, 'items', json_array($i % 10, $i % 100, $i % 1000))" ;;
        esac
      done
      echo "CREATE TABLE $n($cols);"
      echo "INSERT INTO $n SELECT $values FROM generate_series(1, ${rows[t]});"
      echo "CREATE INDEX $(name "$t" | tr -d '"')_parent ON $n(parent_id);"
      (( t % 2 == 0 )) && echo "CREATE INDEX $(name "$t" | tr -d '"')_status ON $n(status, modified);"
      (( t % 3 == 0 )) && echo "CREATE INDEX $(name "$t" | tr -d '"')_dataset ON $n(dataset_id, created);"
    done
    echo "COMMIT;"
  } > "$db.sql"
  sqlite3 "$db" < "$db.sql" > /dev/null
  rm -f "$db.sql"
}
