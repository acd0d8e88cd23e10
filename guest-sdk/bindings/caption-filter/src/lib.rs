//! World `caption-filter`. Also owns the interfaces every world shares (`types`, `log`) and `judge`.
//!
//! A world per crate: `wit-bindgen` names the `#[macro_export]` glue of an exported interface
//! after the interface alone, so two worlds exporting `plugin` cannot live in one crate.
//! Plugin authors use these through `vila2-guest`.
#![allow(clippy::all)]

wit_bindgen::generate!({
    world: "caption-filter",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_caption_filter_world",
    default_bindings_module: "vila2_guest::bindings::caption_filter",
        additional_derives: [PartialEq],
});
