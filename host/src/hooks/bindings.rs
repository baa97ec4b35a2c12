//! Host bindings of the `upgrade-hook` world, generated from `wit/hooks.wit`.
//! Every import may trap, so that a host function can stop a hook that hits a
//! limit.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "upgrade-hook",
    imports: { default: trappable },
    with: {
        "uplift:hooks/database.statement": crate::hooks::handles::StatementEntry,
        "uplift:hooks/database.cursor": crate::hooks::handles::CursorEntry,
    },
});
