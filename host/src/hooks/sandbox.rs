//! One hook's store data: WASI with nothing granted, the database capability,
//! the log (with stdout and stderr folded in, capped) and the memory limit.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::hooks::capability::Capability;
use crate::hooks::log::{LogStream, SharedLog};
use crate::hooks::{Limit, LimitHit, LogSource};

/// The data of one hook's store.
///
/// Field order matters: fields drop in declaration order, so the resource
/// table (which holds the hook's prepared statements and cursors) is dropped
/// before the capability that holds the connection (see `raw.rs`).
pub(crate) struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub log: SharedLog,
    pub memory_max: usize,
    pub memory_mib: u64,
    /// Bytes of all the hook's linear memories together (a component may
    /// hold several; the limit is on their sum).
    pub memory_used: usize,
    /// The limit that stopped the hook, when one did.
    pub limit_hit: Option<Limit>,
    /// Prepared statements and cursors the hook holds open.
    pub handles: usize,
    /// When the hook's time is up.
    pub deadline: Instant,
    /// The hook's time limit, for messages.
    pub timeout_seconds: u64,
    /// The hook's database capability.
    pub db: Box<dyn Capability>,
}

impl HostState {
    /// The store data for one hook: WASI with no files, environment,
    /// arguments or network, stdout and stderr into `log`.
    pub(crate) fn new(
        db: Box<dyn Capability>,
        log: SharedLog,
        memory_mib: u64,
        deadline: Instant,
        timeout_seconds: u64,
    ) -> HostState {
        let wasi = WasiCtx::builder()
            .stdout(LogStream {
                log: Arc::clone(&log),
                source: LogSource::Stdout,
            })
            .stderr(LogStream {
                log: Arc::clone(&log),
                source: LogSource::Stderr,
            })
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            table: ResourceTable::new(),
            wasi,
            log,
            memory_max: usize::try_from(memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            memory_mib,
            memory_used: 0,
            limit_hit: None,
            handles: 0,
            deadline,
            timeout_seconds,
            db,
        }
    }

    /// Records that `limit` was hit and returns the error that traps the
    /// guest.
    pub(crate) fn hit(&mut self, limit: Limit) -> wasmtime::Error {
        self.limit_hit = Some(limit.clone());
        wasmtime::Error::new(LimitHit(limit))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_used
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_max {
            return Err(self.hit(Limit::Memory {
                mib: self.memory_mib,
            }));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table elements are host memory too; a million is far beyond any
        // real hook.
        Ok(desired <= 1_000_000)
    }
}
