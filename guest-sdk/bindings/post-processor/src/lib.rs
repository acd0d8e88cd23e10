//! World `post-processor`. Shared interfaces (`types`, `log`) come from `vila2-bindings-caption-filter`.
//!
//! A world per crate: `wit-bindgen` names the `#[macro_export]` glue of an exported interface
//! after the interface alone, so two worlds exporting `plugin` cannot live in one crate.
//! Plugin authors use these through `vila2-guest`.
#![allow(clippy::all)]

wit_bindgen::generate!({
    world: "post-processor",
    path: "../../wit",
    with: {
        "vila2:plugin/types@0.1.0": vila2_bindings_caption_filter::vila2::plugin::types,
        "vila2:plugin/log@0.1.0": vila2_bindings_caption_filter::vila2::plugin::log,
    },
    pub_export_macro: true,
    export_macro_name: "export_post_processor_world",
    default_bindings_module: "vila2_guest::bindings::post_processor",
});
