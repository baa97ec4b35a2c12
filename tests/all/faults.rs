//! The fault harness shared by `power_loss` and `io_errors`: builds the shim
//! (`tests/faults/shim.c`, loaded with `LD_PRELOAD`), reads what it recorded
//! of a run, and builds the file-system states a power cut could leave at
//! each point of that run.
//!
//! # The persistence model
//!
//! A conservative POSIX model, close to ALICE's and CrashMonkey's, for a
//! journaling file system such as ext4 in `data=ordered` mode:
//!
//! - a file's data (writes and truncations) is durable once an `fsync` or
//!   `fdatasync` of that file returns; before, any subset of its writes may
//!   have reached the disk, in any order, and a write of more than one
//!   512-byte sector may be torn (a prefix of its sectors kept);
//! - directory operations (create, mkdir, rename, unlink, link) reach the
//!   disk in the order they were made within each folder (the file system's
//!   journal commits them in order), so a crash keeps a prefix of each
//!   folder's operations; they are durable once an `fsync` of that folder
//!   returns. An `fsync` of a file does not make its name durable (it does
//!   on ext4, not on every file system POSIX allows);
//! - `sync_file_range` makes nothing durable; `sync`/`syncfs` make
//!   everything durable.
//!
//! A crash state is what survives a power cut just before one of the run's
//! operations (or after its last): everything durable at that point, plus a
//! choice of what was not yet. [`crash_states`] bounds the choices (see
//! there) and removes duplicates, so a run yields hundreds to thousands of
//! distinct states rather than an exponential number.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Compiles `tests/faults/NAME.c` once per test run (a shared object when
/// `shared`, else a program) and returns its path.
fn compile(name: &str, shared: bool) -> PathBuf {
    let src = crate::support::repo_root().join(format!("tests/faults/{name}.c"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(if shared {
        format!("{name}.so")
    } else {
        name.to_string()
    });
    // Built under another name and renamed: tests that run in parallel never
    // load a half-written file.
    let partial = out_dir.join(format!("{name}.{}.partial", std::process::id()));
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&partial)
        .arg(&src);
    if shared {
        cc.args(["-shared", "-fPIC"]);
    }
    let status = cc
        .status()
        .expect("a C compiler (cc) is needed by the fault tests");
    assert!(status.success(), "cc failed on {}", src.display());
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// The shim, compiled.
pub(crate) fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| compile("shim", true))
}

/// `tests/faults/writer.c`, compiled: the harness's own test subject.
pub(crate) fn writer() -> &'static Path {
    static WRITER: OnceLock<PathBuf> = OnceLock::new();
    WRITER.get_or_init(|| compile("writer", false))
}

/// Adds the shim to `cmd`: recording operations on files under `root` into
/// `log`, and injecting `inject` (`CLASS:N:ERROR[:PATTERN]`, see shim.c).
pub(crate) fn with_shim<'a>(
    cmd: &'a mut Command,
    root: &Path,
    log: &Path,
    inject: Option<&str>,
) -> &'a mut Command {
    cmd.env("LD_PRELOAD", shim())
        .env("FAULTS_ROOT", root)
        .env("FAULTS_LOG", log);
    match inject {
        Some(spec) => cmd.env("FAULTS_INJECT", spec),
        None => cmd.env_remove("FAULTS_INJECT"),
    }
}

/// One recorded operation; paths relative to the recorded root ("" is the
/// root itself).
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create {
        path: String,
        ino: u64,
    },
    Mkdir {
        path: String,
    },
    Write {
        path: String,
        ino: u64,
        offset: u64,
        data: Vec<u8>,
    },
    Trunc {
        path: String,
        ino: u64,
        size: u64,
    },
    Sync {
        path: String,
        ino: u64,
        dir: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        path: String,
        dir: bool,
    },
    Link {
        from: String,
        to: String,
    },
    /// Output on standard output (1) or error (2).
    Out {
        fd: u64,
        text: String,
    },
    /// `sync_file_range`: starts writeback, makes nothing durable.
    Range {
        path: String,
    },
    /// A fault the shim injected: `errno` 0 is a short write.
    Inject {
        path: String,
        errno: i64,
    },
    /// A call the model does not know (`fallocate`, `copy_file_range`...).
    Other {
        path: String,
        syscall: i64,
    },
    /// `sync` or `syncfs`.
    Global,
}

impl Op {
    /// One line for a report.
    pub(crate) fn describe(&self) -> String {
        match self {
            Op::Create { path, .. } => format!("create {path}"),
            Op::Mkdir { path } => format!("mkdir {path}"),
            Op::Write {
                path, offset, data, ..
            } => format!("write {path} @{offset} +{}", data.len()),
            Op::Trunc { path, size, .. } => format!("truncate {path} to {size}"),
            Op::Sync { path, dir, .. } => {
                format!("fsync {}{path}", if *dir { "folder " } else { "" })
            }
            Op::Rename { from, to } => format!("rename {from} -> {to}"),
            Op::Unlink { path, dir } => {
                format!("{} {path}", if *dir { "rmdir" } else { "unlink" })
            }
            Op::Link { from, to } => format!("link {from} -> {to}"),
            Op::Out { fd, text } => format!("output on fd {fd}: {:?}", text.trim_end()),
            Op::Range { path } => format!("sync_file_range {path}"),
            Op::Inject { path, errno } => format!("injected errno {errno} on {path}"),
            Op::Other { path, syscall } => format!("syscall {syscall} on {path}"),
            Op::Global => "sync".to_string(),
        }
    }
}

/// Reads the shim's log; paths are made relative to `root`.
pub(crate) fn read_log(log: &Path, root: &Path) -> Vec<Op> {
    let bytes = std::fs::read(log).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    let root = root.to_str().unwrap();
    let rel = |p: &[u8]| -> String {
        let p = String::from_utf8_lossy(p).into_owned();
        match p.strip_prefix(root) {
            Some(rest) => rest.trim_start_matches('/').to_string(),
            None => p,
        }
    };
    let mut ops = Vec::new();
    let mut i = 0;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    while i < bytes.len() {
        let h = &bytes[i..i + 40];
        let (kind, ret) = (u32_at(h, 0), u32_at(h, 4) as i32);
        let (ino, offset) = (u64_at(h, 8), u64_at(h, 16));
        let (data_len, path_len, path2_len) = (
            u64_at(h, 24) as usize,
            u32_at(h, 32) as usize,
            u32_at(h, 36) as usize,
        );
        i += 40;
        let path = rel(&bytes[i..i + path_len]);
        i += path_len;
        let path2 = rel(&bytes[i..i + path2_len]);
        i += path2_len;
        let data = bytes[i..i + data_len].to_vec();
        i += data_len;
        ops.push(match kind {
            1 => Op::Create { path, ino },
            2 => Op::Mkdir { path },
            3 => Op::Write {
                path,
                ino,
                offset,
                data,
            },
            4 => Op::Trunc {
                path,
                ino,
                size: offset,
            },
            5 => Op::Sync {
                path,
                ino,
                dir: offset == 1,
            },
            6 => Op::Rename {
                from: path,
                to: path2,
            },
            7 => Op::Unlink {
                path,
                dir: offset == 1,
            },
            8 => Op::Link {
                from: path,
                to: path2,
            },
            9 => Op::Out {
                fd: ino,
                text: String::from_utf8_lossy(&data).into_owned(),
            },
            10 => Op::Range { path },
            11 => Op::Inject {
                path,
                errno: if ret < 0 { -i64::from(ret) } else { 0 },
            },
            12 => Op::Other {
                path,
                syscall: offset as i64,
            },
            13 => Op::Global,
            other => panic!("unknown record type {other} in {}", log.display()),
        });
    }
    ops
}

/// What is in a folder before the recorded run: every file's bytes and
/// inode, every folder. Paths under `skip` (relative) are left out.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    pub dirs: Vec<String>,
    pub files: BTreeMap<String, (u64, Vec<u8>)>,
}

impl Snapshot {
    pub(crate) fn take(root: &Path, skip: &[&str]) -> Snapshot {
        use std::os::unix::fs::MetadataExt;
        let mut snap = Snapshot::default();
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if skip.contains(&path.as_str()) {
                    continue;
                }
                let meta = std::fs::symlink_metadata(entry.path()).unwrap();
                if meta.is_dir() {
                    snap.dirs.push(path.clone());
                    stack.push(path);
                } else if meta.is_file() {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    snap.files.insert(path, (meta.ino(), bytes));
                }
            }
        }
        snap.dirs.sort();
        snap
    }
}

/// A recorded operation in model terms: files are numbered (ids) rather
/// than named by inodes, which the file system reuses.
#[derive(Debug, Clone)]
enum Step {
    /// A directory operation, in the folders it changes.
    Meta {
        dirs: Vec<String>,
        change: Change,
    },
    /// A change of a file's data.
    Data {
        file: usize,
        change: DataChange,
    },
    SyncFile {
        file: usize,
    },
    SyncDir {
        dir: String,
    },
    SyncAll,
    /// No effect on the disk (output, sync_file_range, an injected fault).
    Note,
}

#[derive(Debug, Clone)]
enum Change {
    Create { path: String, file: usize },
    Mkdir { path: String },
    Rename { from: String, to: String },
    Unlink { path: String },
    Link { from: String, to: String },
}

#[derive(Debug, Clone)]
enum DataChange {
    Write { offset: u64, data: Vec<u8> },
    Trunc { size: u64 },
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => path[..i].to_string(),
        None => String::new(),
    }
}

/// A recorded run, ready to be crashed: the state before it and its steps.
pub(crate) struct Run {
    pub ops: Vec<Op>,
    steps: Vec<Step>,
    initial: Snapshot,
    /// File id -> initial bytes (for files that existed before the run).
    initial_data: Vec<Vec<u8>>,
}

impl Run {
    /// Models `ops` recorded on a folder that held `initial`. Operations on
    /// paths starting with one of `ignore` (relative) are left out; an
    /// operation the model does not know fails the test.
    pub(crate) fn new(initial: Snapshot, ops: Vec<Op>, ignore: &[&str]) -> Run {
        let ignored = |p: &str| {
            ignore
                .iter()
                .any(|i| p == *i || p.starts_with(&format!("{i}/")))
        };
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| match op {
                Op::Create { path, .. }
                | Op::Mkdir { path }
                | Op::Write { path, .. }
                | Op::Trunc { path, .. }
                | Op::Sync { path, .. }
                | Op::Unlink { path, .. }
                | Op::Range { path }
                | Op::Inject { path, .. }
                | Op::Other { path, .. } => !ignored(path),
                Op::Rename { from, to } | Op::Link { from, to } => !(ignored(from) && ignored(to)),
                Op::Out { .. } | Op::Global => true,
            })
            .collect();
        let mut initial_data = Vec::new();
        let mut by_ino: HashMap<u64, usize> = HashMap::new();
        let mut by_path: HashMap<String, usize> = HashMap::new();
        for (path, (ino, bytes)) in &initial.files {
            by_ino.insert(*ino, initial_data.len());
            by_path.insert(path.clone(), initial_data.len());
            initial_data.push(bytes.clone());
        }
        let mut next = initial_data.len();
        let file_of = |ino: u64, path: &str, by_ino: &mut HashMap<u64, usize>| -> usize {
            *by_ino.entry(ino).or_insert_with(|| {
                by_path
                    .get(path)
                    .copied()
                    .unwrap_or_else(|| panic!("a write to {path}, a file the run never created"))
            })
        };
        let mut steps = Vec::new();
        for op in &ops {
            steps.push(match op {
                Op::Create { path, ino } => {
                    let file = next;
                    next += 1;
                    by_ino.insert(*ino, file);
                    Step::Meta {
                        dirs: vec![parent(path)],
                        change: Change::Create {
                            path: path.clone(),
                            file,
                        },
                    }
                }
                Op::Mkdir { path } => Step::Meta {
                    dirs: vec![parent(path)],
                    change: Change::Mkdir { path: path.clone() },
                },
                Op::Write {
                    path,
                    ino,
                    offset,
                    data,
                } => Step::Data {
                    file: file_of(*ino, path, &mut by_ino),
                    change: DataChange::Write {
                        offset: *offset,
                        data: data.clone(),
                    },
                },
                Op::Trunc { path, ino, size } => Step::Data {
                    file: file_of(*ino, path, &mut by_ino),
                    change: DataChange::Trunc { size: *size },
                },
                Op::Sync {
                    path, dir: true, ..
                } => Step::SyncDir { dir: path.clone() },
                Op::Sync { path, ino, .. } => Step::SyncFile {
                    file: file_of(*ino, path, &mut by_ino),
                },
                Op::Rename { from, to } => {
                    let mut dirs = vec![parent(from)];
                    if parent(to) != parent(from) {
                        dirs.push(parent(to));
                    }
                    Step::Meta {
                        dirs,
                        change: Change::Rename {
                            from: from.clone(),
                            to: to.clone(),
                        },
                    }
                }
                Op::Unlink { path, .. } => Step::Meta {
                    dirs: vec![parent(path)],
                    change: Change::Unlink { path: path.clone() },
                },
                Op::Link { from, to } => Step::Meta {
                    dirs: vec![parent(to)],
                    change: Change::Link {
                        from: from.clone(),
                        to: to.clone(),
                    },
                },
                Op::Global => Step::SyncAll,
                Op::Other { .. } => panic!(
                    "the run made a call the power-loss model does not know: {}",
                    op.describe()
                ),
                Op::Out { .. } | Op::Range { .. } | Op::Inject { .. } => Step::Note,
            });
        }
        Run {
            ops,
            steps,
            initial,
            initial_data,
        }
    }

    /// The index of the first output (on standard output or error) whose
    /// text contains `needle`: the moment the run reported something to its
    /// user.
    pub(crate) fn reported_at(&self, needle: &str) -> Option<usize> {
        let mut text = [String::new(), String::new()];
        for (i, op) in self.ops.iter().enumerate() {
            if let Op::Out { fd, text: t } = op {
                let text = &mut text[usize::from(*fd == 2)];
                text.push_str(t);
                if text.contains(needle) {
                    return Some(i);
                }
            }
        }
        None
    }
}

/// One crash state: a power cut just before step `at`, with a choice of
/// which unsynced steps reached the disk.
#[derive(Clone, Debug)]
pub(crate) struct Crash {
    /// Steps `0..at` were made.
    pub at: usize,
    /// Per folder, how many of its not yet durable directory operations
    /// reached the disk (absent: all of them).
    cuts: BTreeMap<String, usize>,
    /// Unsynced data steps that did not reach the disk.
    dropped: HashSet<usize>,
    /// A data step of which only its first sectors reached the disk.
    torn: Option<(usize, usize)>,
    /// How this choice was made (for the report).
    pub how: &'static str,
}

/// What a crash leaves: files (path -> bytes) and folders.
#[derive(Clone, Default)]
pub(crate) struct State {
    pub dirs: Vec<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl State {
    /// A digest of the whole state, to skip states already checked.
    pub(crate) fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.dirs.hash(&mut h);
        self.files.hash(&mut h);
        h.finish()
    }

    /// Writes the state into `dir` (which must not exist).
    pub(crate) fn write_to(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for d in &self.dirs {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (path, bytes) in &self.files {
            std::fs::write(dir.join(path), bytes).unwrap();
        }
    }
}

impl Run {
    /// Which steps before `at` are durable, and the not yet durable
    /// directory operations of each folder, in order.
    fn pending(&self, at: usize) -> (Vec<usize>, BTreeMap<String, Vec<usize>>) {
        let mut data = Vec::new();
        let mut meta: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, step) in self.steps[..at].iter().enumerate() {
            match step {
                Step::Data { file, .. } => {
                    let durable = self.steps[i + 1..at].iter().any(|s| match s {
                        Step::SyncFile { file: f } => f == file,
                        Step::SyncAll => true,
                        _ => false,
                    });
                    if !durable {
                        data.push(i);
                    }
                }
                Step::Meta { dirs, .. } => {
                    for d in dirs {
                        let durable = self.steps[i + 1..at].iter().any(|s| match s {
                            Step::SyncDir { dir } => dir == d,
                            Step::SyncAll => true,
                            _ => false,
                        });
                        if !durable {
                            meta.entry(d.clone()).or_default().push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        // A folder's operations reach the disk in order: once one is
        // durable, so is every earlier one in that folder.
        for (d, list) in meta.iter_mut() {
            let last_durable = self.steps[..at]
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    matches!(s, Step::Meta { dirs, .. } if dirs.contains(d)) && !list.contains(i)
                })
                .map(|(i, _)| i)
                .max();
            if let Some(last) = last_durable {
                list.retain(|&i| i > last);
            }
        }
        (data, meta)
    }

    /// The state a crash leaves.
    pub(crate) fn state(&self, crash: &Crash) -> State {
        let (_, meta) = self.pending(crash.at);
        let kept_meta = |i: usize, dirs: &[String]| {
            dirs.iter().all(|d| match (meta.get(d), crash.cuts.get(d)) {
                (Some(list), Some(&cut)) => match list.iter().position(|&j| j == i) {
                    Some(pos) => pos < cut,
                    None => true,
                },
                _ => true,
            })
        };
        let mut dirs: Vec<String> = self.initial.dirs.clone();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (n, path) in self.initial.files.keys().enumerate() {
            names.insert(path.clone(), n);
        }
        let mut data: HashMap<usize, Vec<u8>> =
            self.initial_data.iter().cloned().enumerate().collect();
        let exists = |dirs: &[String], d: &str| d.is_empty() || dirs.iter().any(|x| x == d);
        for (i, step) in self.steps[..crash.at].iter().enumerate() {
            match step {
                Step::Meta {
                    dirs: in_dirs,
                    change,
                } => {
                    if !kept_meta(i, in_dirs) {
                        continue;
                    }
                    match change {
                        Change::Create { path, file } => {
                            if exists(&dirs, &parent(path)) {
                                names.insert(path.clone(), *file);
                                data.entry(*file).or_default();
                            }
                        }
                        Change::Mkdir { path } => {
                            if exists(&dirs, &parent(path)) && !dirs.contains(path) {
                                dirs.push(path.clone());
                            }
                        }
                        Change::Rename { from, to } => {
                            if let Some(file) = names.remove(from) {
                                if exists(&dirs, &parent(to)) {
                                    names.insert(to.clone(), file);
                                }
                            } else if let Some(pos) = dirs.iter().position(|d| d == from) {
                                dirs[pos] = to.clone();
                            }
                        }
                        Change::Unlink { path } => {
                            if names.remove(path).is_none() {
                                dirs.retain(|d| d != path);
                            }
                        }
                        Change::Link { from, to } => {
                            if let Some(&file) = names.get(from) {
                                names.insert(to.clone(), file);
                            }
                        }
                    }
                }
                Step::Data { file, change } => {
                    if crash.dropped.contains(&i) {
                        continue;
                    }
                    let bytes = data.entry(*file).or_default();
                    match change {
                        DataChange::Write { offset, data: d } => {
                            let keep = match crash.torn {
                                Some((t, n)) if t == i => n,
                                _ => d.len(),
                            };
                            let off = *offset as usize;
                            if bytes.len() < off + keep {
                                bytes.resize(off + keep, 0);
                            }
                            bytes[off..off + keep].copy_from_slice(&d[..keep]);
                        }
                        DataChange::Trunc { size } => bytes.resize(*size as usize, 0),
                    }
                }
                _ => {}
            }
        }
        dirs.sort();
        let files = names
            .into_iter()
            .filter(|(path, _)| exists(&dirs, &parent(path)))
            .map(|(path, file)| (path, data.get(&file).cloned().unwrap_or_default()))
            .collect();
        State { dirs, files }
    }

    /// The crash points: before every step that is not a plain data write
    /// (a sync, a directory operation, an output) and after the last.
    /// Between two of them only data is written, and the "prefix" choices
    /// below cover a cut in the middle.
    fn crash_points(&self) -> Vec<usize> {
        let mut points: Vec<usize> = (0..self.steps.len())
            .filter(|&i| !matches!(self.steps[i], Step::Data { .. }))
            .collect();
        points.push(self.steps.len());
        points.dedup();
        points
    }
}

/// Every crash state of `run` under the model, without duplicates (the
/// same files before and after the run reported success, at `reported_at`,
/// count as two), at most `budget` of them (when there are more: every state after the
/// report, and the rest chosen evenly over the run), each
/// with the crash that leads to it.
///
/// At each crash point the choices are: everything reached the disk;
/// nothing unsynced did; all directory operations but no unsynced data, and
/// the reverse; each folder's pending operations cut at each length (with
/// all unsynced data, and with none); the unsynced data writes in order up
/// to each length; each unsynced data write alone missing, and alone
/// present; the last unsynced write torn after its first sector.
pub(crate) fn crash_states(
    run: &Run,
    budget: usize,
    reported_at: Option<usize>,
) -> Vec<(Crash, State)> {
    let mut seen = HashSet::new();
    let mut out: Vec<(Crash, State)> = Vec::new();
    for at in run.crash_points() {
        let (data, meta) = run.pending(at);
        let all_data: HashSet<usize> = data.iter().copied().collect();
        let none_meta: BTreeMap<String, usize> = meta.keys().map(|d| (d.clone(), 0)).collect();
        let mut choices: Vec<Crash> = Vec::new();
        let base = Crash {
            at,
            cuts: BTreeMap::new(),
            dropped: HashSet::new(),
            torn: None,
            how: "everything reached the disk",
        };
        choices.push(base.clone());
        choices.push(Crash {
            cuts: none_meta.clone(),
            dropped: all_data.clone(),
            how: "nothing unsynced reached the disk",
            ..base.clone()
        });
        choices.push(Crash {
            dropped: all_data.clone(),
            how: "directory operations reached the disk, unsynced data did not",
            ..base.clone()
        });
        choices.push(Crash {
            cuts: none_meta.clone(),
            how: "unsynced data reached the disk, directory operations did not",
            ..base.clone()
        });
        for (d, list) in &meta {
            for cut in 0..list.len() {
                let mut cuts = BTreeMap::new();
                cuts.insert(d.clone(), cut);
                choices.push(Crash {
                    cuts: cuts.clone(),
                    how: "a folder's operations cut short",
                    ..base.clone()
                });
                choices.push(Crash {
                    cuts,
                    dropped: all_data.clone(),
                    how: "a folder's operations cut short, no unsynced data",
                    ..base.clone()
                });
            }
        }
        for n in 0..data.len() {
            choices.push(Crash {
                dropped: data[n..].iter().copied().collect(),
                how: "unsynced data written in order, cut short",
                ..base.clone()
            });
        }
        for &j in &data {
            choices.push(Crash {
                dropped: HashSet::from([j]),
                how: "one unsynced write missing",
                ..base.clone()
            });
            choices.push(Crash {
                dropped: all_data.iter().copied().filter(|&x| x != j).collect(),
                how: "only one unsynced write reached the disk",
                ..base.clone()
            });
        }
        if let Some(&last) = data.last()
            && let Step::Data {
                change: DataChange::Write { data: d, .. },
                ..
            } = &run.steps[last]
            && d.len() > 512
        {
            choices.push(Crash {
                torn: Some((last, 512)),
                how: "the last unsynced write torn after its first sector",
                ..base.clone()
            });
        }
        for crash in choices {
            let state = run.state(&crash);
            // The same files are a different case once the run has reported
            // success: then only its result is acceptable.
            let reported = reported_at.is_some_and(|r| crash.at > r);
            if seen.insert((state.digest(), reported)) {
                out.push((crash, state));
            }
        }
    }
    // The states after the report are few and decide whether what the run
    // reported is durable: always kept. The rest are sampled evenly.
    let (mut after, before): (Vec<_>, Vec<_>) = out
        .into_iter()
        .partition(|(crash, _)| reported_at.is_some_and(|r| crash.at > r));
    let room = budget.saturating_sub(after.len());
    let n = before.len();
    let mut out: Vec<(Crash, State)> = if n > room {
        before
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i * room / n != (i + 1) * room / n)
            .map(|(_, s)| s)
            .collect()
    } else {
        before
    };
    out.append(&mut after);
    out
}

impl Run {
    /// A crash, precisely: where, and what did not reach the disk.
    pub(crate) fn describe(&self, crash: &Crash) -> String {
        let before = match self.ops.get(crash.at) {
            Some(op) => format!("before op #{} ({})", crash.at, op.describe()),
            None => format!("after the last op (#{})", self.ops.len()),
        };
        let (data, meta) = self.pending(crash.at);
        let mut lost = Vec::new();
        for (d, list) in &meta {
            if let Some(&cut) = crash.cuts.get(d) {
                for &i in &list[cut..] {
                    lost.push(format!("#{} {}", i, self.ops[i].describe()));
                }
            }
        }
        for &i in &data {
            if crash.dropped.contains(&i) {
                lost.push(format!("#{} {}", i, self.ops[i].describe()));
            }
        }
        lost.sort_by_key(|s| s[1..].split(' ').next().unwrap().parse::<usize>().unwrap());
        let torn = match crash.torn {
            Some((i, n)) => format!("; torn after {n} bytes: #{i} {}", self.ops[i].describe()),
            None => String::new(),
        };
        format!(
            "power cut {before} [{}]; lost: {}{torn}",
            crash.how,
            if lost.is_empty() {
                "nothing".to_string()
            } else {
                lost.join(", ")
            }
        )
    }

    /// The whole recording, one op a line (for a report).
    pub(crate) fn listing(&self) -> String {
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| format!("  #{i:<4} {}\n", op.describe()))
            .collect()
    }
}
