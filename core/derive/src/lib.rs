//! `#[derive(CrdSchema)]` for mesh-core's serde wire structs.
//!
//! The schema is read off the same `#[serde(...)]` attributes serde's own derive reads, so
//! what the API server is told and what meshctl parses cannot drift apart:
//! - `rename_all = "camelCase"` and `rename` give the property names (aliases are not
//!   listed: Istio's CRDs list the camelCase names only, and so do ours);
//! - a field is `required` only where serde requires it (no `default` on the struct or
//!   the field, and not an `Option`);
//! - `deserialize_with = "path::to::f"` selects the schema function of the same name in
//!   `crate::schema::deserialize_with`, so a deserializer without a schema function is a
//!   compile error rather than a silently wrong schema;
//! - `skip` / `skip_deserializing` fields are left out; `flatten`, other renaming rules,
//!   enums and tuple structs are refused.
//!
//! Doc comments become `description`s. The generated code names `crate::schema`, so the
//! derive is for use inside mesh-core only.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, LitStr, Type, parse_macro_input};

/// Implements `crate::schema::CrdSchema` for a struct with named fields.
#[proc_macro_derive(CrdSchema)]
pub fn derive_crd_schema(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What the derive needs from a container's or a field's `#[serde(...)]` attributes.
#[derive(Default)]
struct SerdeAttrs {
    rename_all: Option<LitStr>,
    rename: Option<String>,
    default: bool,
    skip: bool,
    flatten: bool,
    deserialize_with: Option<LitStr>,
}

fn serde_attrs(attrs: &[Attribute]) -> syn::Result<SerdeAttrs> {
    let mut out = SerdeAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            // Every `key = value` has its value consumed, known key or not.
            let value: Option<LitStr> = if meta.input.peek(syn::Token![=]) {
                let expr: Expr = meta.value()?.parse()?;
                match expr {
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s),
                    _ => None,
                }
            } else {
                None
            };
            match key.as_str() {
                "rename_all" => out.rename_all = value,
                "rename" => out.rename = value.map(|v| v.value()),
                "default" => out.default = true,
                "skip" | "skip_deserializing" => out.skip = true,
                "flatten" => out.flatten = true,
                "deserialize_with" | "with" => out.deserialize_with = value,
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The text of the `///` comments, lines joined with spaces (blank lines kept as breaks).
fn doc(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines
        .split(String::is_empty)
        .map(|para| without_rust_notes(&para.join(" ")))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    (!text.is_empty()).then_some(text)
}

/// A doc paragraph without the sentences about the Rust representation (`None` when
/// absent ...), which mean nothing to a user reading `kubectl explain`; of a sentence
/// `summary; note`, the summary stays.
fn without_rust_notes(text: &str) -> String {
    let is_note = |s: &str| s.contains("`None`") || s.contains("`Option");
    let mut kept = Vec::new();
    for sentence in text.split_inclusive(". ").map(str::trim) {
        if !is_note(sentence) {
            kept.push(sentence.to_owned());
        } else if let Some((head, _)) = sentence.split_once("; ")
            && !is_note(head)
        {
            kept.push(format!("{head}."));
        }
    }
    kept.join(" ")
}

/// serde's `camelCase` rule for a snake_case field name.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        _ => false,
    }
}

fn opt_str(s: Option<String>) -> Tokens {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "derive(CrdSchema) is for structs; Istio enums get their schema from istio_enum!",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            name,
            "derive(CrdSchema) needs named fields",
        ));
    };
    let container = serde_attrs(&input.attrs)?;
    let camel = match &container.rename_all {
        None => false,
        Some(rule) if rule.value() == "camelCase" => true,
        Some(rule) => {
            return Err(syn::Error::new_spanned(
                rule,
                "derive(CrdSchema) knows only rename_all = \"camelCase\"",
            ));
        }
    };

    let mut inserts = Vec::new();
    let mut required = Vec::new();
    for field in &fields.named {
        let attrs = serde_attrs(&field.attrs)?;
        if attrs.skip {
            continue;
        }
        if attrs.flatten {
            return Err(syn::Error::new_spanned(
                field,
                "derive(CrdSchema) does not support flatten",
            ));
        }
        let Some(ident) = &field.ident else {
            continue;
        };
        let rust_name = ident.to_string();
        let rust_name = rust_name.trim_start_matches("r#");
        let wire = match attrs.rename {
            Some(r) => r,
            None if camel => camel_case(rust_name),
            None => rust_name.to_owned(),
        };
        let ty = &field.ty;
        let schema = match &attrs.deserialize_with {
            Some(path) => {
                let text = path.value();
                let last = text.rsplit("::").next().unwrap_or_default();
                let func = syn::Ident::new(last, path.span());
                quote!(crate::schema::deserialize_with::#func::<#ty>())
            }
            None => quote!(<#ty as crate::schema::CrdSchema>::schema()),
        };
        if !container.default && !attrs.default && !is_option(ty) {
            required.push(wire.clone());
        }
        let description = opt_str(doc(&field.attrs));
        inserts.push(quote! {
            properties.insert(
                ::std::string::String::from(#wire),
                crate::schema::described(#schema, #description),
            );
        });
    }
    let description = opt_str(doc(&input.attrs));
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics crate::schema::CrdSchema for #name #ty_generics #where_clause {
            fn schema() -> ::serde_json::Value {
                let mut properties = ::serde_json::Map::new();
                #(#inserts)*
                crate::schema::object(properties, &[#(#required),*], #description)
            }
        }
    })
}
