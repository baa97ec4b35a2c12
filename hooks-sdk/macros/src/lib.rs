//! The procedural macros behind `uplift-hooks-sdk`: `plugin!`, which writes
//! the plugin's part of the manifest and exports the dispatcher,
//! `#[version_upgrade]`, which checks one hook's ranges and signature, writes
//! its manifest fragment and registers it for dispatch, and
//! `#[derive(FromRow)]`.
//!
//! Use them through `uplift_hooks_sdk` (which re-exports them); the generated
//! code names `::uplift_hooks_sdk`, so the SDK must be a dependency under that
//! name.
//!
//! Every fragment goes to the custom section `uplift:manifest` (see
//! `wit/MANIFEST.md`): the linker concatenates them, the host merges them.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, LitByteStr, LitStr, Token};
use uplift_contract::names;

/// Declares the plugin: its name, version and the tables its hooks may touch.
///
/// Invoke it once, at the root of the plugin crate. See the `uplift_hooks_sdk`
/// documentation for the keys.
#[proc_macro]
pub fn plugin(input: TokenStream) -> TokenStream {
    match syn::parse::<PluginArgs>(input).and_then(|args| args.expand()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Marks a function `fn(&Context) -> Result<()>` as an upgrade hook, run when
/// the data version before the upgrade matches `old_version` and the release
/// being installed matches `new_version` and, when given, the plugin version
/// the data was last upgraded with matches `plugin_old_version` (a first
/// activation, with none, matches only when it is not given) and the
/// installed plugin's version matches `plugin_new_version`. The application's
/// ranges are given both or neither (then any version, and at least one
/// plugin range is needed).
#[proc_macro_attribute]
pub fn version_upgrade(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(err) => {
            let mut out = TokenStream2::from(item);
            out.extend(err.to_compile_error());
            return out.into();
        }
    };
    let parsed = syn::parse::Parser::parse(
        Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated,
        attr,
    );
    match parsed.and_then(|args| expand_hook(args, &func)) {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            // Keep the function so that its own code still type-checks and
            // the only error shown is ours.
            let mut out = quote!(#func);
            out.extend(err.to_compile_error());
            out.into()
        }
    }
}

/// Implements `FromRow` for a struct with named fields: each field is read
/// from the column of the same name (or the one named by
/// `#[column = "name"]`).
#[proc_macro_derive(FromRow, attributes(column))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    match syn::parse::<syn::DeriveInput>(input).and_then(|input| expand_from_row(&input)) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// One `key: value` of `plugin!`.
enum PluginValue {
    Str(LitStr),
    List(Vec<LitStr>, Span),
}

struct PluginArgs {
    entries: Vec<(Ident, PluginValue)>,
    span: Span,
}

impl Parse for PluginArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let span = Span::call_site();
        let mut entries = Vec::new();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let value = if input.peek(syn::token::Bracket) {
                let content;
                let bracket = syn::bracketed!(content in input);
                let items = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                PluginValue::List(items.into_iter().collect(), bracket.span.join())
            } else {
                PluginValue::Str(input.parse()?)
            };
            entries.push((key, value));
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(PluginArgs { entries, span })
    }
}

impl PluginArgs {
    fn expand(self) -> syn::Result<TokenStream2> {
        let mut name = None;
        let mut version = None;
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut owns = None;
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in self.entries {
            let k = key.to_string();
            if seen.contains(&k) {
                return Err(syn::Error::new(key.span(), format!("`{k}` is given twice")));
            }
            seen.push(k.clone());
            match (k.as_str(), value) {
                ("name", PluginValue::Str(s)) => {
                    names::check_plugin_name(&s.value())
                        .map_err(|e| syn::Error::new(s.span(), e))?;
                    name = Some(s.value());
                }
                ("version", PluginValue::Str(s)) => {
                    uplift_contract::version::Version::parse(&s.value()).map_err(|e| {
                        syn::Error::new(
                            s.span(),
                            format!("{e} (the plugin version must be a version uplift understands, e.g. \"1.0.0\")"),
                        )
                    })?;
                    version = Some(s.value());
                }
                ("reads", PluginValue::List(items, _)) => reads = check_tables(items)?,
                ("writes", PluginValue::List(items, _)) => writes = check_tables(items)?,
                ("owns", PluginValue::Str(s)) => {
                    names::check_owned_prefix(&s.value())
                        .map_err(|e| syn::Error::new(s.span(), e))?;
                    owns = Some(s.value());
                }
                ("name" | "version" | "owns", PluginValue::List(_, span)) => {
                    return Err(syn::Error::new(
                        span,
                        format!("`{k}` takes one string, not a list"),
                    ));
                }
                ("reads" | "writes", PluginValue::Str(s)) => {
                    return Err(syn::Error::new(
                        s.span(),
                        format!("`{k}` takes a list of table names: {k}: [\"table\", ...]"),
                    ));
                }
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown key `{k}`: plugin! takes name, version, reads, writes and owns"
                        ),
                    ));
                }
            }
        }
        let Some(name) = name else {
            return Err(syn::Error::new(
                self.span,
                "plugin! needs the plugin's name: `name: \"my-plugin\"`",
            ));
        };
        let version = match version {
            Some(v) => v,
            // The crate's own version, which Cargo has already checked.
            None => std::env::var("CARGO_PKG_VERSION").map_err(|_| {
                syn::Error::new(self.span, "plugin! needs `version: \"...\"` outside Cargo")
            })?,
        };

        let mut json = format!(
            "{{\"uplift_manifest\":1,\"name\":{},\"version\":{},\"capabilities\":{{\"read\":{},\"write\":{}",
            json_string(&name),
            json_string(&version),
            json_list(&reads),
            json_list(&writes)
        );
        if let Some(owns) = &owns {
            json.push_str(&format!(",\"owns\":{}", json_string(owns)));
        }
        json.push_str("}}\n");
        let section = manifest_static(&json, format_ident!("__UPLIFT_MANIFEST_PLUGIN"));
        Ok(quote! {
            #section
            /// Set by `plugin!`: hooks refer to it so that a plugin without
            /// `plugin!` at its crate root does not compile.
            #[doc(hidden)]
            pub(crate) const __UPLIFT_HOOKS_NEED_PLUGIN_MACRO_AT_CRATE_ROOT: () = ();
            const _: () = {
                use ::uplift_hooks_sdk::__private::Dispatcher;
                ::uplift_hooks_sdk::bindings::export!(
                    Dispatcher with_types_in ::uplift_hooks_sdk::bindings
                );
            };
        })
    }
}

fn check_tables(items: Vec<LitStr>) -> syn::Result<Vec<String>> {
    let mut out = Vec::new();
    for lit in items {
        let table = lit.value();
        names::check_table_name(&table).map_err(|e| syn::Error::new(lit.span(), e))?;
        out.push(table);
    }
    Ok(out)
}

/// The ranges `#[version_upgrade]` takes, by key, in the order of
/// [`HookRanges::KEYS`].
#[derive(Default)]
struct HookRanges {
    old_version: Option<String>,
    new_version: Option<String>,
    plugin_old_version: Option<String>,
    plugin_new_version: Option<String>,
}

impl HookRanges {
    const KEYS: &'static str =
        "old_version, new_version, plugin_old_version and plugin_new_version";

    /// Reads and checks the attribute's `key = "range"` arguments: each
    /// range with uplift's grammar; the application's ranges both or
    /// neither, and without them at least one of the plugin's.
    fn parse(args: &Punctuated<syn::MetaNameValue, Token![,]>) -> syn::Result<HookRanges> {
        let mut ranges = HookRanges::default();
        for arg in args {
            let key = arg
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let lit = match &arg.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => s.clone(),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "a version range is a string literal, e.g. \">=1.0.0\"",
                    ));
                }
            };
            let slot = match key.as_str() {
                "old_version" => &mut ranges.old_version,
                "new_version" => &mut ranges.new_version,
                "plugin_old_version" => &mut ranges.plugin_old_version,
                "plugin_new_version" => &mut ranges.plugin_new_version,
                _ => {
                    return Err(syn::Error::new(
                        arg.path.span(),
                        format!("unknown argument: #[version_upgrade] takes {}", Self::KEYS),
                    ));
                }
            };
            if slot.is_some() {
                return Err(syn::Error::new(
                    arg.path.span(),
                    format!("`{key}` is given twice"),
                ));
            }
            uplift_contract::version::VersionRange::parse(&lit.value())
                .map_err(|e| syn::Error::new(lit.span(), format!("{key}: {e}")))?;
            *slot = Some(lit.value());
        }
        ranges.check_complete()?;
        Ok(ranges)
    }

    fn check_complete(&self) -> syn::Result<()> {
        let plugin = self.plugin_old_version.is_some() || self.plugin_new_version.is_some();
        let message = match (&self.old_version, &self.new_version) {
            (Some(_), Some(_)) => return Ok(()),
            (None, None) if plugin => return Ok(()),
            (None, None) => "#[version_upgrade] needs version ranges: the application's, e.g. #[version_upgrade(old_version = \"<1.0.0\", new_version = \">=1.0.0\")], or its plugin's own, e.g. #[version_upgrade(plugin_old_version = \"<2.0.0\", plugin_new_version = \">=2.0.0\")]".to_string(),
            (None, Some(_)) => Self::half_given("old_version"),
            (Some(_), None) => Self::half_given("new_version"),
        };
        Err(syn::Error::new(Span::call_site(), message))
    }

    fn half_given(missing: &str) -> String {
        format!(
            "#[version_upgrade] needs both ranges, e.g. #[version_upgrade(old_version = \"<1.0.0\", new_version = \">=1.0.0\")]; `{missing}` is missing (use \"*\" for any version)"
        )
    }

    /// The ranges as the keys of a hook's manifest fragment, each given one
    /// only (an application range left out is any version).
    fn json_fields(&self) -> String {
        [
            ("old_version", &self.old_version),
            ("new_version", &self.new_version),
            ("plugin_old_version", &self.plugin_old_version),
            ("plugin_new_version", &self.plugin_new_version),
        ]
        .iter()
        .filter_map(|(key, range)| {
            range
                .as_deref()
                .map(|r| format!(",\"{key}\":{}", json_string(r)))
        })
        .collect()
    }
}

fn expand_hook(
    args: Punctuated<syn::MetaNameValue, Token![,]>,
    func: &syn::ItemFn,
) -> syn::Result<TokenStream2> {
    let ranges = HookRanges::parse(&args)?;
    check_signature(&func.sig)?;
    let ident = &func.sig.ident;
    let hook_name = ident.to_string().trim_start_matches("r#").to_string();
    names::check_hook_name(&hook_name).map_err(|e| {
        syn::Error::new(
            ident.span(),
            format!("{e} (a hook's name is its function's name)"),
        )
    })?;

    // The declaration order: the source line (see wit/MANIFEST.md, `order`).
    let order = ident.span().unwrap().line();
    let json = format!(
        "{{\"uplift_manifest\":1,\"hook\":{{\"name\":{}{},\"order\":{order}}}}}\n",
        json_string(&hook_name),
        ranges.json_fields(),
    );
    let section = manifest_static(&json, format_ident!("__UPLIFT_MANIFEST_HOOK"));
    let any = String::from("*");
    let old_version = ranges.old_version.as_ref().unwrap_or(&any);
    let new_version = ranges.new_version.as_ref().unwrap_or(&any);
    let optional = |range: &Option<String>| match range {
        Some(range) => quote!(::core::option::Option::Some(#range)),
        None => quote!(::core::option::Option::None),
    };
    let plugin_old_version = optional(&ranges.plugin_old_version);
    let plugin_new_version = optional(&ranges.plugin_new_version);
    let typed = quote_spanned! {func.sig.span()=>
        const __UPLIFT_HOOK: fn(&::uplift_hooks_sdk::Context) -> ::uplift_hooks_sdk::Result<()> = #ident;
    };
    let declared = quote_spanned! {Span::call_site()=>
        #[allow(clippy::let_unit_value)]
        let () = crate::__UPLIFT_HOOKS_NEED_PLUGIN_MACRO_AT_CRATE_ROOT;
    };
    Ok(quote! {
        #func
        const _: () = {
            #section
            #typed
            ::uplift_hooks_sdk::__private::inventory::submit! {
                ::uplift_hooks_sdk::__private::Hook {
                    name: #hook_name,
                    old_version: #old_version,
                    new_version: #new_version,
                    plugin_old_version: #plugin_old_version,
                    plugin_new_version: #plugin_new_version,
                    run: __UPLIFT_HOOK,
                }
            }
            const _: () = {
                #declared
            };
        };
    })
}

fn check_signature(sig: &syn::Signature) -> syn::Result<()> {
    let expected = "a hook is `fn name(ctx: &Context) -> Result<()>`";
    if let Some(t) = &sig.asyncness {
        return Err(syn::Error::new(
            t.span(),
            format!("{expected}: it cannot be async"),
        ));
    }
    if let Some(t) = &sig.unsafety {
        return Err(syn::Error::new(
            t.span(),
            format!("{expected}: it cannot be unsafe"),
        ));
    }
    if let Some(t) = &sig.constness {
        return Err(syn::Error::new(
            t.span(),
            format!("{expected}: it cannot be const"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            format!("{expected}: it cannot have an ABI"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("{expected}: it cannot be generic"),
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            format!("{expected}: it cannot be variadic"),
        ));
    }
    if sig.inputs.len() != 1 {
        return Err(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "{expected}: it takes exactly one argument, found {}",
                sig.inputs.len()
            ),
        ));
    }
    if let Some(syn::FnArg::Receiver(r)) = sig.inputs.first() {
        return Err(syn::Error::new(
            r.span(),
            format!("{expected}: it cannot take self"),
        ));
    }
    if let syn::ReturnType::Default = sig.output {
        return Err(syn::Error::new(
            sig.ident.span(),
            format!("{expected}: it must return Result<()> so that a failure can stop the upgrade"),
        ));
    }
    Ok(())
}

/// A `#[used]` static holding one manifest fragment in the `uplift:manifest`
/// custom section (on wasm; elsewhere an ordinary static, so that native
/// unit tests of a plugin compile).
fn manifest_static(json: &str, ident: Ident) -> TokenStream2 {
    let bytes = LitByteStr::new(json.as_bytes(), Span::call_site());
    let len = json.len();
    quote! {
        #[used]
        #[cfg_attr(target_family = "wasm", unsafe(link_section = "uplift:manifest"))]
        #[doc(hidden)]
        static #ident: [u8; #len] = *#bytes;
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", inner.join(","))
}

fn expand_from_row(input: &syn::DeriveInput) -> syn::Result<TokenStream2> {
    let syn::Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(FromRow)] works on structs with named fields",
        ));
    };
    let syn::Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(
            data.fields.span(),
            "#[derive(FromRow)] needs named fields (their names are the column names); for a tuple struct, read a tuple",
        ));
    };
    let mut reads = Vec::new();
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let mut column = ident.to_string().trim_start_matches("r#").to_string();
        for attr in &field.attrs {
            if attr.path().is_ident("column") {
                let nv = attr.meta.require_name_value()?;
                match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => column = s.value(),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "#[column = \"name\"] takes a string",
                        ));
                    }
                }
            }
        }
        reads.push(quote! { #ident: row.get(#column)? });
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::uplift_hooks_sdk::FromRow for #name #ty_generics #where_clause {
            fn from_row(row: &::uplift_hooks_sdk::Row) -> ::uplift_hooks_sdk::Result<Self> {
                ::core::result::Result::Ok(Self { #(#reads),* })
            }
        }
    })
}
