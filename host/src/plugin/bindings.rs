//! Host bindings generated from `host/wit/plugin.wit`, one module per world. The shared
//! interfaces (`types`, `log`, `judge`) are generated once, in [`caption_filter`], and reused.

/// World `caption-filter`; owns the shared interface types.
pub mod caption_filter {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "caption-filter",
    });
}

/// World `prompt-template`.
pub mod prompt_template {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "prompt-template",
        with: {
            "vila2:plugin/types": super::caption_filter::vila2::plugin::types,
            "vila2:plugin/log": super::caption_filter::vila2::plugin::log,
        },
    });
}

/// World `post-processor`.
pub mod post_processor {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "post-processor",
        with: {
            "vila2:plugin/types": super::caption_filter::vila2::plugin::types,
            "vila2:plugin/log": super::caption_filter::vila2::plugin::log,
        },
    });
}

/// World `specialist`: a prompt template and a post-processor in one component.
pub mod specialist {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "specialist",
        with: {
            "vila2:plugin/types": super::caption_filter::vila2::plugin::types,
            "vila2:plugin/log": super::caption_filter::vila2::plugin::log,
        },
    });
}

pub use caption_filter::vila2::plugin::{judge, log, types};
