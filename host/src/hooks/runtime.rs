//! Loading and running hooks: one wasmtime engine per upgrade, the compile
//! cache in the home's `cache/`, the linker (WASI with nothing granted, plus
//! `database` and `log`), and [`HookRunner::run`], which runs one hook in its
//! own store, savepoint, authorizer and limits.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline, WasmBacktrace};

use crate::home::{Home, HookLimits};
use crate::hooks::bindings::exports::uplift::hooks::hooks::Context;
use crate::hooks::bindings::{UpgradeHook, UpgradeHookPre};
use crate::hooks::bounds::{self, Trip, Watch, Watchdog};
use crate::hooks::capability::{Capability, NoDatabase};
use crate::hooks::clocks;
use crate::hooks::log::HookLog;
use crate::hooks::plugins::{PlannedHook, Plugin};
use crate::hooks::sandbox::HostState;
use crate::hooks::{HookError, Limit, LimitHit, LogSink, TransactionEnded, escape_untrusted};

/// How often the epoch ticks; the time limit is checked at this grain.
const TICK: Duration = Duration::from_millis(10);

/// Where in the upgrade a hook runs (the plugin and hook come from the
/// [`PlannedHook`]).
#[derive(Debug, Clone)]
pub struct HookContext {
    /// The application's name.
    pub app: String,
    /// The data version before the upgrade.
    pub old_version: String,
    /// The release version the data is being upgraded to.
    pub new_version: String,
    /// True when nothing the run does will be kept.
    pub dry_run: bool,
}

/// What a hook that succeeded did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookOutcome {
    /// The plugin's name.
    pub plugin: String,
    /// The hook's name.
    pub hook: String,
    /// Wall-clock time of the hook (instantiation, its own work, its
    /// savepoint), loading excluded.
    pub duration: Duration,
    /// Of the hook's whole time, what the sandbox's set-up took: loading
    /// the component (from the compile cache, or compiling it, and linking;
    /// nothing when an earlier hook of the same plugin loaded it) and
    /// instantiating it.
    pub setup: Duration,
    /// Bytes of log it wrote.
    pub log_bytes: usize,
    /// Statements the sandbox refused (the hook handled the errors).
    pub refused: Vec<String>,
    /// Tables and views (of the main schema) the hook created, including the
    /// new name of one it renamed: the caller records them as the plugin's
    /// with [`crate::engine::sqlite::meta::record_plugin_tables`], so that later hooks of the
    /// plugin still own them.
    pub created: Vec<String>,
    /// Tables and views (of the main schema) the hook dropped, including the
    /// old name of one it renamed: the caller forgets them.
    pub dropped: Vec<String>,
}

/// One plugin's component made ready before its hooks run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompileRun {
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// Whether it was compiled or read from the compile cache.
    pub cache: CacheOutcome,
    /// Milliseconds: compiling (or reading the cache) and linking.
    pub ms: f64,
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    /// Read from the compile cache.
    Hit,
    /// Compiled, and stored in the cache.
    Compiled,
    /// Compiled; the cache could not be written (it is an optimisation only).
    CompiledUncached,
}

/// The engine and the linker every hook is instantiated with.
pub(crate) struct HookEngine {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// How long compiling one component may take (`[hooks] compile_seconds`).
    pub compile_seconds: u64,
}

impl HookEngine {
    /// The engine (epoch interruption on, component model) and a linker that
    /// provides exactly WASI p2 (its monotonic clock bounded by the hook's
    /// deadline, see [`clocks::DeadlineClocks`]), `database` and `log`.
    pub(super) fn new() -> Result<HookEngine, HookError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| HookError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HookError::Engine(e.to_string()))?;
        clocks::bound_clocks(&mut linker).map_err(|e| HookError::Engine(e.to_string()))?;
        UpgradeHook::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| HookError::Engine(e.to_string()))?;
        Ok(HookEngine {
            engine,
            linker,
            compile_seconds: HookLimits::default().compile_seconds,
        })
    }

    /// Compiles `bytes`, through `cache` when given; `subject` names the
    /// component for the message when compiling is stopped (`plugin P
    /// (FILE)`).
    pub(super) fn compile(
        &self,
        bytes: &[u8],
        cache: Option<&CompileCache>,
        subject: &str,
    ) -> Result<(Component, CacheOutcome), String> {
        if let Some(cache) = cache
            && let Some(component) = cache.load(&self.engine, &blake3::hash(bytes))
        {
            return Ok((component, CacheOutcome::Hit));
        }
        self.compile_and_store(bytes, cache, subject)
    }

    /// Loads the component file at `path` through `cache` when given. The
    /// cache is looked up with the file's digest, computed as the file
    /// streams through a small buffer: a hit never holds the component in
    /// memory. On a miss the file is read whole, compiled, and stored under
    /// the digest of the bytes read (not of the bytes hashed before, which a
    /// concurrent change could make differ).
    pub(crate) fn load_file(
        &self,
        path: &Path,
        cache: Option<&CompileCache>,
        subject: &str,
        compiling: &mut dyn FnMut(),
    ) -> Result<(Component, CacheOutcome), LoadFileError> {
        let mut file = std::fs::File::open(path).map_err(LoadFileError::Io)?;
        if let Some(cache) = cache {
            let mut hasher = blake3::Hasher::new();
            hasher.update_reader(&mut file).map_err(LoadFileError::Io)?;
            if let Some(component) = cache.load(&self.engine, &hasher.finalize()) {
                return Ok((component, CacheOutcome::Hit));
            }
            file.rewind().map_err(LoadFileError::Io)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(LoadFileError::Io)?;
        compiling();
        self.compile_and_store(&bytes, cache, subject)
            .map_err(LoadFileError::Compile)
    }

    /// Compiles `bytes` and stores the result in `cache` when given.
    ///
    /// Compiling is the one step whose time and memory the component's
    /// author controls before any of its code runs (a component of deeply
    /// nested loops compiles in quadratic time), and wasmtime cannot be
    /// interrupted while it compiles: the watchdog watches it against
    /// `compile_seconds` and [`bounds::COMPILE_MEMORY_MIB`], and the `uplift`
    /// binary ends itself when either is passed (see [`bounds`]). A library
    /// caller gets the limit as the error once the compilation returns.
    fn compile_and_store(
        &self,
        bytes: &[u8],
        cache: Option<&CompileCache>,
        subject: &str,
    ) -> Result<(Component, CacheOutcome), String> {
        let limit = Limit::Compile {
            seconds: self.compile_seconds,
        };
        let watch = Watchdog::get().arm(
            Watch {
                subject: subject.to_string(),
                deadline: Instant::now() + Duration::from_secs(self.compile_seconds),
                time_limit: limit.clone(),
                memory: Some((
                    bounds::COMPILE_MEMORY_MIB << 20,
                    Limit::ProcessMemory {
                        mib: bounds::COMPILE_MEMORY_MIB,
                    },
                )),
                disk: None,
                interrupt: None,
                after: "Nothing was committed: SQLite rolls an unfinished upgrade back from its \
                        journal the next time the database is opened, leaving it exactly as it was.",
            },
            Arc::new(Trip::default()),
        );
        let compiled = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"));
        let tripped = watch.trip().get();
        drop(watch);
        if let Some(limit) = tripped {
            return Err(limit.to_string());
        }
        let component = compiled?;
        let outcome = match cache {
            Some(cache)
                if cache
                    .store(&self.engine, &blake3::hash(bytes), &component)
                    .is_ok() =>
            {
                CacheOutcome::Compiled
            }
            _ => CacheOutcome::CompiledUncached,
        };
        Ok((component, outcome))
    }

    /// Type-checks `component` against the linker (its imports) and the
    /// world (its exports), without instantiating it.
    pub(super) fn pre(&self, component: &Component) -> Result<UpgradeHookPre<HostState>, String> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| format!("it imports something uplift does not provide: {e:#}"))?;
        UpgradeHookPre::new(pre).map_err(|e| {
            format!("it does not export the uplift:hooks/hooks interface of the upgrade-hook world: {e:#}")
        })
    }
}

/// Why [`HookEngine::load_file`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadFileError {
    /// The component file could not be read.
    #[error("could not read the component: {0}")]
    Io(#[source] std::io::Error),
    /// wasmtime could not compile it (its message).
    #[error("could not compile the component: {0}")]
    Compile(String),
}

/// Compiled components in the home's `cache/`, keyed by the BLAKE3 digest
/// of the component's bytes and the engine's compatibility hash. Each entry
/// is the file `blake3-<digest>-<engine>.cwasm`, exactly as wasmtime
/// serialized it (so that it can be mapped into memory rather than copied),
/// and `<entry>.xxh3`, the XXH3-128 checksum of the first. An entry whose
/// checksum is missing or does not match, or that wasmtime refuses, is
/// ignored and compiled again.
///
/// The key is a cryptographic digest, so that two different components can
/// never share compiled code. The checksum only has to catch accidental
/// damage (a torn or flipped file): it is stored unkeyed beside the entry,
/// so no hash function could stop someone who can write `cache/` from
/// changing both, and the cache is as trusted as uplift's binary (see
/// `load`). A 128-bit non-cryptographic checksum misses random damage with
/// probability 2^-128, and costs a fraction of a cryptographic hash on a
/// Python plugin's tens of megabytes, which every warm load reads.
///
/// Storing an entry (after a compilation, which is rare) prunes what no
/// load by this engine will ever read: entries of the SHA-256 naming
/// (`<sha256>-<engine>.cwasm` with a `.sha256` checksum), which older homes
/// hold and no current build reads, entries compiled by another engine (another wasmtime version or
/// configuration, i.e. another uplift build), and temporary files of a
/// store that was killed, once an hour old. Entries of plugin versions no
/// longer installed are kept (uplift cannot tell whether a release that
/// still uses them will be installed again); deleting `cache/` is always
/// safe, it only costs a compilation.
pub struct CompileCache {
    dir: PathBuf,
}

/// The prefix of the cache's entries (the hash function of their key).
const ENTRY_PREFIX: &str = "blake3-";

/// The prefix of the cache's temporary files, renamed into entries.
const TEMP_PREFIX: &str = ".store-";

/// How old a temporary file of the cache must be before it is taken as
/// left behind by a killed store.
const STALE_TEMP: Duration = Duration::from_secs(3600);

impl CompileCache {
    /// The cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache { dir: dir.into() }
    }

    /// The file that holds (or would hold) the compiled form of `bytes`.
    pub fn entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.entry_for(engine, &blake3::hash(bytes))
    }

    /// The entry of the component whose digest is `digest`.
    fn entry_for(&self, engine: &Engine, digest: &blake3::Hash) -> PathBuf {
        self.dir.join(format!(
            "{ENTRY_PREFIX}{}-{}.cwasm",
            digest.to_hex(),
            engine_tag(engine)
        ))
    }

    fn load(&self, engine: &Engine, digest: &blake3::Hash) -> Option<Component> {
        let path = self.entry_for(engine, digest);
        let expected = std::fs::read(checksum_path(&path)).ok()?;
        let file = std::fs::File::open(&path).ok()?;
        // Streamed through a small buffer: the compiled form of a Python
        // plugin is tens of megabytes, and wasmtime maps it itself below.
        if expected.as_slice() != streamed_checksum(file).ok()? {
            return None;
        }
        // SAFETY: `Component::deserialize_file` trusts the file to be what
        // `Component::serialize` produced for a compatible engine, because it
        // maps it as executable code, and to stay unchanged while mapped. The
        // file is exactly what `store` wrote: its checksum (kept beside it,
        // checked just above) matches, the file name carries the engine's
        // compatibility hash, and wasmtime itself re-checks its header and
        // compatibility and fails (we then recompile) on any mismatch.
        // uplift only ever replaces an entry by renaming a new file over it,
        // which leaves an existing mapping intact, and only removes files no
        // load by this engine reads (unlinking, which leaves a mapping of
        // another process intact too).
        // The cache lives in the operator's own home, which uplift treats as
        // trusted as its binary.
        unsafe { Component::deserialize_file(engine, &path) }.ok()
    }

    fn store(
        &self,
        engine: &Engine,
        digest: &blake3::Hash,
        component: &Component,
    ) -> std::io::Result<()> {
        let payload = component.serialize().map_err(std::io::Error::other)?;
        let checksum = xxhash_rust::xxh3::xxh3_128(&payload).to_be_bytes();
        let path = self.entry_for(engine, digest);
        if crate::disk::create_dir_durably(&self.dir)? {
            // A cache made by root in a service user's home stays usable
            // by the service user.
            crate::disk::hand_to_home_owner(crate::disk::parent_of(&self.dir), &self.dir)?;
        }
        // The code first, then its checksum: a crash in between leaves an
        // entry without a checksum, which `load` ignores.
        for (target, contents) in [
            (path.clone(), &payload[..]),
            (checksum_path(&path), &checksum[..]),
        ] {
            let mut tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(&self.dir)?;
            tmp.write_all(contents)?;
            tmp.as_file().sync_all()?;
            crate::disk::hand_to_home_owner(&self.dir, tmp.path())?;
            tmp.persist(target).map_err(|e| e.error)?;
        }
        self.prune(engine);
        Ok(())
    }

    /// Removes the files of `cache/` that no load by `engine` will read (see
    /// [`CompileCache`]). Best effort: a file that cannot be removed stays.
    fn prune(&self, engine: &Engine) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let current = engine_tag(engine);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let stale = match name.strip_prefix(TEMP_PREFIX) {
                Some(_) => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP),
                None => match parse_entry_name(name) {
                    Some(EntryName::Current { engine }) => engine != current,
                    Some(EntryName::Sha256) => true,
                    None => false,
                },
            };
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The engine's compatibility hash, as entry names carry it.
fn engine_tag(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// What the name of a file in `cache/` says it is.
#[derive(Debug, PartialEq, Eq)]
enum EntryName<'a> {
    /// `blake3-<64 hex>-<16 hex>.cwasm[.xxh3]`, compiled by `engine`.
    Current { engine: &'a str },
    /// `<64 hex>-<16 hex>.cwasm[.sha256]`: the SHA-256 naming of older homes.
    Sha256,
}

/// Parses the name of a cache file; `None` for anything else (left alone).
fn parse_entry_name(name: &str) -> Option<EntryName<'_>> {
    if let Some(rest) = name.strip_prefix(ENTRY_PREFIX) {
        let stem = rest
            .strip_suffix(".cwasm")
            .or_else(|| rest.strip_suffix(".cwasm.xxh3"))?;
        let engine = engine_of_stem(stem)?;
        return Some(EntryName::Current { engine });
    }
    let stem = name
        .strip_suffix(".cwasm")
        .or_else(|| name.strip_suffix(".cwasm.sha256"))?;
    engine_of_stem(stem).map(|_| EntryName::Sha256)
}

/// The engine part of `<64 hex digits>-<16 hex digits>`.
fn engine_of_stem(stem: &str) -> Option<&str> {
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let (digest, engine) = stem.split_once('-')?;
    (is_hex(digest, 64) && is_hex(engine, 16)).then_some(engine)
}

/// Where the checksum of the cache entry at `entry` is kept.
fn checksum_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_os_string();
    name.push(".xxh3");
    PathBuf::from(name)
}

/// The XXH3-128 checksum of what `reader` holds (big-endian, as stored),
/// read through a 64 KiB buffer.
fn streamed_checksum(mut reader: impl Read) -> std::io::Result<[u8; 16]> {
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(hasher.digest128().to_be_bytes()),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Ticks the engine's epoch until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("uplift-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What loading a component cost: for `uplift hooks test` and the benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Where the compiled code came from.
    pub cache: CacheOutcome,
    /// Reading, compiling or deserializing, and linking.
    pub load: Duration,
    /// Instantiating in a fresh store.
    pub instantiate: Duration,
}

/// Runs hooks: one engine and compile cache for a whole upgrade.
pub struct HookRunner {
    engine: HookEngine,
    cache: Option<CompileCache>,
    limits: HookLimits,
    loaded: HashMap<PathBuf, UpgradeHookPre<HostState>>,
    ticker: EpochTicker,
}

impl HookRunner {
    /// A runner caching compiled components in `home`'s `cache/`, with
    /// `limits` for every hook. Fails only when the engine cannot be set up.
    pub fn new(home: &Home, limits: &HookLimits) -> Result<HookRunner, HookError> {
        Self::with_cache(Some(CompileCache::new(home.cache_dir())), limits)
    }

    /// A runner with the given cache (`None`: compile every time).
    pub fn with_cache(
        cache: Option<CompileCache>,
        limits: &HookLimits,
    ) -> Result<HookRunner, HookError> {
        let mut engine = HookEngine::new()?;
        engine.compile_seconds = limits.compile_seconds;
        let ticker = EpochTicker::start(&engine.engine);
        Ok(HookRunner {
            engine,
            cache,
            limits: limits.clone(),
            loaded: HashMap::new(),
            ticker,
        })
    }

    fn compile_and_link(
        &self,
        path: &Path,
        plugin: &str,
        compiling: &mut dyn FnMut(),
    ) -> Result<(UpgradeHookPre<HostState>, CacheOutcome), HookError> {
        let load_error = |message: String| HookError::Load {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            message,
        };
        let (component, outcome) = self
            .engine
            .load_file(
                path,
                self.cache.as_ref(),
                &format!("plugin {plugin} ({})", path.display()),
                compiling,
            )
            .map_err(|err| match err {
                LoadFileError::Io(source) => HookError::Io {
                    path: path.to_path_buf(),
                    source,
                },
                LoadFileError::Compile(message) => load_error(message),
            })?;
        let pre = self.engine.pre(&component).map_err(load_error)?;
        Ok((pre, outcome))
    }

    /// Compiles (or takes from the cache) and links the plugin at `path`,
    /// once per runner.
    pub(crate) fn load(
        &mut self,
        path: &Path,
        plugin: &str,
    ) -> Result<UpgradeHookPre<HostState>, HookError> {
        if let Some(pre) = self.loaded.get(path) {
            return Ok(pre.clone());
        }
        let (pre, _) = self.compile_and_link(path, plugin, &mut || {})?;
        self.loaded.insert(path.to_path_buf(), pre.clone());
        Ok(pre)
    }

    /// Compiles (or takes from the cache) and links the component of each
    /// of `plugins`, before any of their hooks runs: so that a first use's
    /// compilation happens before the upgrade's transaction begins, is said
    /// (`compiling` hears of each plugin about to compile), and is reported
    /// apart from the hooks' own time.
    pub fn prepare(
        &mut self,
        plugins: &[&Plugin],
        compiling: &mut dyn FnMut(&Plugin),
    ) -> Result<Vec<CompileRun>, HookError> {
        let mut runs: Vec<CompileRun> = Vec::new();
        for plugin in plugins {
            if self.loaded.contains_key(&plugin.path) {
                continue;
            }
            let started = Instant::now();
            let (pre, cache) =
                self.compile_and_link(&plugin.path, plugin.name(), &mut || compiling(plugin))?;
            self.loaded.insert(plugin.path.clone(), pre);
            runs.push(CompileRun {
                plugin: plugin.name().to_string(),
                version: plugin.manifest.version.clone(),
                cache,
                ms: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
        Ok(runs)
    }

    /// Loads the component at `path` through the compile cache (never from
    /// this runner's memory) and instantiates it in a throwaway store with an
    /// empty database, running none of its hooks: what a hook pays before it
    /// runs. For the benchmark and `uplift hooks test`.
    pub fn load_and_instantiate(&mut self, path: &Path) -> Result<LoadReport, HookError> {
        let started = Instant::now();
        let (pre, cache) = self.compile_and_link(path, "(benchmark)", &mut || {})?;
        let load = started.elapsed();
        let started = Instant::now();
        let log = HookLog::new(
            Arc::new(|_: &crate::hooks::LogLine| {}),
            "benchmark",
            "-",
            1,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let trip = Arc::new(Trip::default());
        let state = HostState::new(
            Box::new(NoDatabase),
            log,
            self.limits.memory_mib,
            deadline,
            self.limits.timeout_seconds,
        );
        let mut store = self.store(state, trip);
        pre.instantiate(&mut store).map_err(|e| HookError::Load {
            plugin: "(benchmark)".into(),
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        })?;
        Ok(LoadReport {
            cache,
            load,
            instantiate: started.elapsed(),
        })
    }

    /// A store for one hook. Its epoch deadline comes every tick: the
    /// callback traps once the hook's deadline has passed or the watchdog
    /// stopped the hook (`trip`), and otherwise lets it run one more tick.
    fn store(&self, state: HostState, trip: Arc<Trip>) -> Store<HostState> {
        let deadline = state.deadline;
        let seconds = self.limits.timeout_seconds;
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let limit = trip
                .get()
                .or_else(|| (Instant::now() >= deadline).then_some(Limit::Time { seconds }));
            match limit {
                Some(limit) => Err(wasmtime::Error::new(LimitHit(limit))),
                None => Ok(UpdateDeadline::Continue(1)),
            }
        });
        store
    }

    /// Arms the watchdog for `hook` (see [`bounds`]): its deadline, the
    /// growth of the process's memory and of the files it has open, with
    /// `interrupt` to stop the engine's work, and `after` to say what a
    /// stopped process leaves of the database.
    pub(crate) fn watch(
        &self,
        hook: &PlannedHook,
        deadline: Instant,
        interrupt: Box<dyn Fn() + Send + Sync>,
        after: &'static str,
        trip: Arc<Trip>,
    ) -> bounds::WatchGuard {
        let limits = &self.limits;
        let process_mib = limits.process_memory_mib();
        Watchdog::get().arm(
            Watch {
                subject: format!("hook {}/{}", hook.plugin, hook.hook),
                deadline,
                time_limit: Limit::Time {
                    seconds: limits.timeout_seconds,
                },
                memory: Some((
                    process_mib.saturating_mul(1 << 20),
                    Limit::ProcessMemory { mib: process_mib },
                )),
                disk: Some((
                    limits.disk_mib.saturating_mul(1 << 20),
                    Limit::Disk {
                        mib: limits.disk_mib,
                    },
                )),
                interrupt: Some(interrupt),
                after,
            },
            trip,
        )
    }

    /// Runs `hook` with `capability` in a store of its own (see
    /// [`HostState`]): its limits, its deadline (`deadline`, and `trip`,
    /// which the watchdog sets), its log lines to `sink` as they are
    /// written. Always gives `capability` back, with every statement and
    /// cursor the hook held dropped. The engine decides what the capability
    /// allows, and what a hook that succeeded leaves behind.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call(
        &self,
        pre: &UpgradeHookPre<HostState>,
        hook: &PlannedHook,
        ctx: &HookContext,
        capability: Box<dyn Capability>,
        deadline: Instant,
        trip: &Arc<Trip>,
        sink: Arc<dyn LogSink>,
    ) -> (Box<dyn Capability>, Result<Called, HookError>) {
        let log = HookLog::new(sink, &hook.plugin, &hook.hook, self.limits.max_log_kib);
        let state = HostState::new(
            capability,
            Arc::clone(&log),
            self.limits.memory_mib,
            deadline,
            self.limits.timeout_seconds,
        );
        let mut store = self.store(state, Arc::clone(trip));
        let context = Context {
            app: ctx.app.clone(),
            plugin: hook.plugin.clone(),
            plugin_version: hook.plugin_version.clone(),
            hook: hook.hook.clone(),
            old_version: ctx.old_version.clone(),
            new_version: ctx.new_version.clone(),
            dry_run: ctx.dry_run,
        };
        let instantiating = Instant::now();
        let instance = pre.instantiate(&mut store);
        let instantiate = instantiating.elapsed();
        let called = instance
            .and_then(|instance| instance.uplift_hooks_hooks().call_run(&mut store, &context));

        let HostState {
            table,
            limit_hit,
            mut db,
            ..
        } = store.into_data();
        drop(table); // finalizes the hook's statements before the capability moves on
        let refused = db.take_refused();
        let limit_hit = limit_hit.or_else(|| trip.get());
        let (log_bytes, stderr) = match log.lock() {
            Ok(mut log) => {
                log.finish();
                (log.written(), log.stderr_tail())
            }
            Err(_) => (0, Vec::new()),
        };
        let result = match called {
            Ok(Ok(())) => Ok(Called {
                log_bytes,
                refused,
                instantiate,
            }),
            Ok(Err(message)) => Err(HookError::Failed {
                plugin: hook.plugin.clone(),
                hook: hook.hook.clone(),
                message: escape_untrusted(&message).into_owned(),
                refused,
            }),
            Err(err) => Err(classify_trap(
                err,
                limit_hit,
                hook,
                stderr,
                self.limits.timeout_seconds,
            )),
        };
        (db, result)
    }

    /// The limits every hook of this runner runs under.
    pub(crate) fn limits(&self) -> &HookLimits {
        &self.limits
    }
}

/// What [`HookRunner::call`] reports of a hook that succeeded.
pub(crate) struct Called {
    /// Bytes of log it wrote.
    pub(crate) log_bytes: usize,
    /// The statements the sandbox refused (the hook carried on).
    pub(crate) refused: Vec<String>,
    /// How long instantiating the component took.
    pub(crate) instantiate: Duration,
}

impl Drop for HookRunner {
    fn drop(&mut self) {
        // Stop the ticker before the engine goes (field order would do it
        // too; this keeps it explicit).
        self.ticker.stop.store(true, Ordering::Relaxed);
    }
}

fn classify_trap(
    err: wasmtime::Error,
    limit_hit: Option<Limit>,
    hook: &PlannedHook,
    stderr: Vec<String>,
    timeout_seconds: u64,
) -> HookError {
    if let Some(ended) = err.downcast_ref::<TransactionEnded>() {
        return HookError::TransactionLost {
            plugin: hook.plugin.clone(),
            hook: hook.hook.clone(),
            cause: escape_untrusted(&ended.0).into_owned(),
        };
    }
    let limit = err
        .downcast_ref::<LimitHit>()
        .map(|hit| hit.0.clone())
        .or(limit_hit)
        .or_else(|| {
            (err.downcast_ref::<Trap>() == Some(&Trap::Interrupt)).then_some(Limit::Time {
                seconds: timeout_seconds,
            })
        });
    if let Some(limit) = limit {
        return HookError::Limit {
            plugin: hook.plugin.clone(),
            hook: hook.hook.clone(),
            limit,
        };
    }
    let backtrace_text = err.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    let reason = match err.downcast_ref::<Trap>() {
        Some(Trap::UnreachableCodeReached) => {
            "it executed `unreachable` (a Rust panic or abort ends this way)".to_string()
        }
        Some(Trap::StackOverflow) => "stack overflow (runaway recursion?)".to_string(),
        Some(Trap::MemoryOutOfBounds) => {
            "out-of-bounds memory access (a Rust stack overflow from deep recursion ends this way too)"
                .to_string()
        }
        Some(trap) => trap.to_string(),
        // wasmtime wraps its own errors (a copy between host and guest that
        // is too big, say) in the guest's backtrace: the reason first, the
        // backtrace on its own lines below.
        None => err
            .chain()
            .map(|cause| cause.to_string())
            .filter(|cause| Some(cause) != backtrace_text.as_ref())
            .collect::<Vec<_>>()
            .join(": "),
    };
    let backtrace = backtrace_text
        .filter(|bt| !bt.trim().is_empty())
        // Frame names come from the component's name section: the plugin's.
        .map(|bt| {
            bt.lines()
                .map(|line| escape_untrusted(line).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        });
    HookError::Trap {
        plugin: hook.plugin.clone(),
        hook: hook.hook.clone(),
        reason: escape_untrusted(&reason).into_owned(),
        stderr,
        backtrace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Capabilities;

    fn planned() -> PlannedHook {
        PlannedHook {
            plugin: "p".into(),
            plugin_version: "1.0".into(),
            hook: "h".into(),
            path: PathBuf::from("p.wasm"),
            capabilities: Capabilities::default(),
            old_version: "*".into(),
            new_version: "*".into(),
            plugin_old_version: None,
            plugin_new_version: None,
        }
    }

    #[test]
    fn a_wasmtime_error_in_a_backtrace_gives_its_reason_first() {
        // wasmtime reports its own limits (a copy between host and guest
        // too large, say) as the reason wrapped in the guest's backtrace.
        let engine = Engine::default();
        let store = Store::new(&engine, ());
        let backtrace = WasmBacktrace::force_capture(&store);
        let err =
            wasmtime::Error::msg("list of 70000000 values is too large to copy").context(backtrace);
        let text = classify_trap(err, None, &planned(), Vec::new(), 1).to_string();
        assert!(
            text.starts_with("hook p/h crashed: list of 70000000 values is too large to copy"),
            "{text}"
        );
        assert_eq!(text.matches("too large").count(), 1, "{text}");
    }
}
