//! The hook's clocks: WASI's monotonic clock with waits bounded by the
//! hook's deadline.

use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;

use crate::hooks::sandbox::HostState;
use crate::hooks::{Limit, LimitHit};

/// `wasi:clocks/monotonic-clock` with waits bounded by the hook's deadline:
/// a sleep or a poll on a clock that would end after the deadline traps at
/// once with the time limit, instead of blocking uplift (and the home's
/// lock) in host code, where the epoch deadline does not reach.
pub(crate) struct DeadlineClocks<'a> {
    inner: wasmtime_wasi::clocks::WasiClocksCtxView<'a>,
    deadline: Instant,
    seconds: u64,
}

/// The `HasData` of [`DeadlineClocks`], for the linker.
pub(crate) struct BoundedClocks;

impl HasData for BoundedClocks {
    type Data<'a> = DeadlineClocks<'a>;
}

impl DeadlineClocks<'_> {
    /// The clocks of `state`'s hook.
    pub(super) fn of(state: &mut HostState) -> DeadlineClocks<'_> {
        let deadline = state.deadline;
        let seconds = state.timeout_seconds;
        DeadlineClocks {
            inner: state.clocks(),
            deadline,
            seconds,
        }
    }

    fn check(&self, wait: Duration) -> wasmtime::Result<()> {
        let ends = Instant::now().checked_add(wait);
        if ends.is_none_or(|ends| ends > self.deadline) {
            return Err(wasmtime::Error::new(LimitHit(Limit::Time {
                seconds: self.seconds,
            })));
        }
        Ok(())
    }
}

impl monotonic_clock::Host for DeadlineClocks<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        self.inner.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        self.inner.resolution()
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.inner.now()?;
        self.check(Duration::from_nanos(when.saturating_sub(now)))?;
        self.inner.subscribe_instant(when)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.check(Duration::from_nanos(duration))?;
        self.inner.subscribe_duration(duration)
    }
}

/// Replaces WASI's monotonic clock in `linker` with [`DeadlineClocks`].
pub(crate) fn bound_clocks(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added =
        monotonic_clock::add_to_linker::<HostState, BoundedClocks>(linker, DeadlineClocks::of);
    linker.allow_shadowing(false);
    added
}
