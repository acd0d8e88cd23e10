//! Glue between the world traits and the generated bindings; used by the `export_*!` macros.
//!
//! A component holds one plugin instance, kept in a single slot: `configure` replaces it, the
//! first batch of an unconfigured component builds it from `Config::default()`.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::{
    caption_filter as cf, post_processor as pp, prompt_template as pt, specialist as sp,
};
use crate::{
    Candidate, CaptionFilter, Description, Plugin, PostProcessor, Processed, Prompt, PromptRequest,
    PromptTemplate, SpecialistOutput, Verdict, WorldKind,
};

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Parses `json` into `T::Config`, builds `T` and makes it the instance. On error the previous
/// instance (if any) stays.
pub fn configure<T: Plugin>(json: &str) -> Result<(), String> {
    let plugin = T::new(crate::parse_config(json)?)?;
    INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
    Ok(())
}

/// Runs `f` on the instance, building it from the default config when there is none.
pub fn with_instance<T: Plugin, R>(f: impl FnOnce(&T) -> R) -> Result<R, String> {
    INSTANCE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|p| !p.is::<T>()) {
            *slot = Some(Box::new(T::new(T::Config::default())?));
        }
        let plugin = slot
            .as_ref()
            .and_then(|p| p.downcast_ref::<T>())
            .expect("instance was just set");
        Ok(f(plugin))
    })
}

/// Runs a batch method, turning a failure to build the plugin into one error per item.
fn batch<T: Plugin, I, O>(
    items: &[I],
    f: impl FnOnce(&T, &[I]) -> Vec<Result<O, String>>,
) -> Vec<Result<O, String>> {
    match with_instance::<T, _>(|p| f(p, items)) {
        Ok(out) => out,
        Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
    }
}

fn describe<T: Plugin>(world: WorldKind) -> Description {
    T::about().describe(world)
}

/// Exports a [`CaptionFilter`] as world `caption-filter`.
pub struct CaptionFilterExport<T>(PhantomData<T>);

impl<T: CaptionFilter> cf::exports::vila2::plugin::plugin::Guest for CaptionFilterExport<T> {
    fn describe() -> Description {
        describe::<T>(WorldKind::CaptionFilter)
    }
    fn configure(config: String) -> Result<(), String> {
        configure::<T>(&config)
    }
}

impl<T: CaptionFilter> cf::exports::vila2::plugin::filter::Guest for CaptionFilterExport<T> {
    fn filter(batch: Vec<Candidate>) -> Vec<Result<Verdict, String>> {
        self::batch::<T, _, _>(&batch, |p, b| p.filter_batch(b))
    }
}

/// Exports a [`PromptTemplate`] as world `prompt-template`.
pub struct PromptTemplateExport<T>(PhantomData<T>);

impl<T: PromptTemplate> pt::exports::vila2::plugin::plugin::Guest for PromptTemplateExport<T> {
    fn describe() -> Description {
        describe::<T>(WorldKind::PromptTemplate)
    }
    fn configure(config: String) -> Result<(), String> {
        configure::<T>(&config)
    }
}

impl<T: PromptTemplate> pt::exports::vila2::plugin::template::Guest for PromptTemplateExport<T> {
    fn render(batch: Vec<PromptRequest>) -> Vec<Result<Prompt, String>> {
        self::batch::<T, _, _>(&batch, |p, b| p.render_batch(b))
    }
}

/// Exports a [`PostProcessor`] as world `post-processor`.
pub struct PostProcessorExport<T>(PhantomData<T>);

impl<T: PostProcessor> pp::exports::vila2::plugin::plugin::Guest for PostProcessorExport<T> {
    fn describe() -> Description {
        describe::<T>(WorldKind::PostProcessor)
    }
    fn configure(config: String) -> Result<(), String> {
        configure::<T>(&config)
    }
}

impl<T: PostProcessor> pp::exports::vila2::plugin::processor::Guest for PostProcessorExport<T> {
    fn process(batch: Vec<SpecialistOutput>) -> Vec<Result<Processed, String>> {
        self::batch::<T, _, _>(&batch, |p, b| p.process_batch(b))
    }
}

/// Exports a [`PromptTemplate`] + [`PostProcessor`] as world `specialist`.
pub struct SpecialistExport<T>(PhantomData<T>);

impl<T: PromptTemplate + PostProcessor> sp::exports::vila2::plugin::plugin::Guest
    for SpecialistExport<T>
{
    fn describe() -> Description {
        describe::<T>(WorldKind::Specialist)
    }
    fn configure(config: String) -> Result<(), String> {
        configure::<T>(&config)
    }
}

impl<T: PromptTemplate + PostProcessor> sp::exports::vila2::plugin::template::Guest
    for SpecialistExport<T>
{
    fn render(batch: Vec<PromptRequest>) -> Vec<Result<Prompt, String>> {
        self::batch::<T, _, _>(&batch, |p, b| p.render_batch(b))
    }
}

impl<T: PromptTemplate + PostProcessor> sp::exports::vila2::plugin::processor::Guest
    for SpecialistExport<T>
{
    fn process(batch: Vec<SpecialistOutput>) -> Vec<Result<Processed, String>> {
        self::batch::<T, _, _>(&batch, |p, b| p.process_batch(b))
    }
}

/// Native builds: the export macros only check the trait bounds (the exported symbol names,
/// such as `vila2:plugin/filter@0.1.0#filter`, are not valid in a native shared library).
pub const fn check_caption_filter<T: CaptionFilter>() {}

#[doc(hidden)]
pub const fn check_prompt_template<T: PromptTemplate>() {}

#[doc(hidden)]
pub const fn check_post_processor<T: PostProcessor>() {}

#[doc(hidden)]
pub const fn check_specialist<T: PromptTemplate + PostProcessor>() {}

/// Exports a [`CaptionFilter`](crate::CaptionFilter) implementation as the component's
/// `caption-filter` world. Use once, at the root of the plugin crate.
#[macro_export]
macro_rules! export_caption_filter {
    ($plugin:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::export::check_caption_filter::<$plugin>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Vila2Export = $crate::export::CaptionFilterExport<$plugin>;
            $crate::bindings::caption_filter::export_caption_filter_world!(
                Vila2Export with_types_in $crate::bindings::caption_filter
            );
        };
    };
}

/// Exports a [`PromptTemplate`](crate::PromptTemplate) implementation as the component's
/// `prompt-template` world.
#[macro_export]
macro_rules! export_prompt_template {
    ($plugin:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::export::check_prompt_template::<$plugin>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Vila2Export = $crate::export::PromptTemplateExport<$plugin>;
            $crate::bindings::prompt_template::export_prompt_template_world!(
                Vila2Export with_types_in $crate::bindings::prompt_template
            );
        };
    };
}

/// Exports a [`PostProcessor`](crate::PostProcessor) implementation as the component's
/// `post-processor` world.
#[macro_export]
macro_rules! export_post_processor {
    ($plugin:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::export::check_post_processor::<$plugin>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Vila2Export = $crate::export::PostProcessorExport<$plugin>;
            $crate::bindings::post_processor::export_post_processor_world!(
                Vila2Export with_types_in $crate::bindings::post_processor
            );
        };
    };
}

/// Exports a type implementing both [`PromptTemplate`](crate::PromptTemplate) and
/// [`PostProcessor`](crate::PostProcessor) as the component's `specialist` world.
#[macro_export]
macro_rules! export_specialist {
    ($plugin:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = $crate::export::check_specialist::<$plugin>();
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Vila2Export = $crate::export::SpecialistExport<$plugin>;
            $crate::bindings::specialist::export_specialist_world!(
                Vila2Export with_types_in $crate::bindings::specialist
            );
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{About, Sample};
    use cf::exports::vila2::plugin::filter::Guest as _;
    use cf::exports::vila2::plugin::plugin::Guest as _;
    use sp::exports::vila2::plugin::plugin::Guest as _;
    use sp::exports::vila2::plugin::processor::Guest as _;
    use sp::exports::vila2::plugin::template::Guest as _;

    #[derive(serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        min: usize,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Cfg { min: 2 }
        }
    }

    /// Keeps texts of at least `min` words; `min` 99 is refused by `new`.
    struct MinWords(usize);

    impl Plugin for MinWords {
        type Config = Cfg;
        fn about() -> About {
            crate::about!(r#"{"type":"object"}"#, "test filter")
        }
        fn new(config: Cfg) -> Result<Self, String> {
            match config.min {
                99 => Err("min 99 is refused".into()),
                n => Ok(MinWords(n)),
            }
        }
    }

    impl CaptionFilter for MinWords {
        fn filter(&self, c: &Candidate) -> Result<Verdict, String> {
            if c.text == "fail" {
                return Err("cannot judge".into());
            }
            let n = c.text.split_whitespace().count();
            Ok(if n >= self.0 {
                crate::keep(1.0)
            } else {
                crate::reject(0.0, ["too-short"])
            })
        }
    }

    /// A specialist whose batch override answers every item at once.
    struct Echo;

    impl Plugin for Echo {
        type Config = Cfg;
        fn about() -> About {
            crate::about!("{}")
        }
        fn new(_: Cfg) -> Result<Self, String> {
            Ok(Echo)
        }
    }

    impl PromptTemplate for Echo {
        fn render(&self, r: &PromptRequest) -> Result<Prompt, String> {
            Ok(Prompt {
                text: crate::image_prompt(&r.sample.key, true),
                variant: "echo".into(),
            })
        }
    }

    impl PostProcessor for Echo {
        fn process(&self, _: &SpecialistOutput) -> Result<Processed, String> {
            unreachable!("process_batch is overridden")
        }
        fn process_batch(&self, batch: &[SpecialistOutput]) -> Vec<Result<Processed, String>> {
            let all: Vec<String> = batch.iter().map(|o| o.answer.clone()).collect();
            batch
                .iter()
                .map(|_| {
                    Ok(Processed {
                        turns: vec![],
                        dropped: all.clone(),
                    })
                })
                .collect()
        }
    }

    fn sample(key: &str) -> Sample {
        Sample {
            key: key.into(),
            width: 1,
            height: 1,
            original_caption: String::new(),
            metadata: vec![],
        }
    }

    fn cand(text: &str) -> Candidate {
        Candidate {
            sample: sample("k"),
            text: text.into(),
            model: "m".into(),
            round: 0,
            mean_logprob: None,
        }
    }

    type F = CaptionFilterExport<MinWords>;
    type S = SpecialistExport<Echo>;

    // One test: the instance slot is per thread and the steps depend on each other.
    #[test]
    fn filter_export_configures_loops_and_keeps_the_last_good_config() {
        INSTANCE.with(|s| *s.borrow_mut() = None);
        let d = F::describe();
        assert_eq!(
            (d.name.as_str(), d.world),
            ("vila2-guest", WorldKind::CaptionFilter)
        );
        assert_eq!(d.description, "test filter");
        assert_eq!(d.version, env!("CARGO_PKG_VERSION"));

        // Unconfigured: built from the default config (min 2).
        let out = F::filter(vec![cand("one"), cand("two words"), cand("fail")]);
        assert_eq!(out.len(), 3);
        assert!(!out[0].as_ref().unwrap().keep);
        assert!(out[1].as_ref().unwrap().keep);
        assert_eq!(out[2], Err("cannot judge".to_string()));

        F::configure(r#"{"min": 1}"#.into()).unwrap();
        assert!(F::filter(vec![cand("one")])[0].as_ref().unwrap().keep);

        let e = F::configure(r#"{"min": "x"}"#.into()).unwrap_err();
        assert!(e.contains("`min`"), "{e}");
        assert_eq!(
            F::configure(r#"{"min": 99}"#.into()),
            Err("min 99 is refused".into())
        );
        assert!(
            F::filter(vec![cand("one")])[0].as_ref().unwrap().keep,
            "last good config stays"
        );
    }

    /// A filter that refuses every config, the default one included.
    struct Refusing;

    impl Plugin for Refusing {
        type Config = Cfg;
        fn about() -> About {
            crate::about!("{}")
        }
        fn new(_: Cfg) -> Result<Self, String> {
            Err("no model directory configured".into())
        }
    }

    impl CaptionFilter for Refusing {
        fn filter(&self, _: &Candidate) -> Result<Verdict, String> {
            unreachable!("never built")
        }
    }

    #[test]
    fn a_default_config_that_new_refuses_fails_every_item_with_the_reason() {
        let out = CaptionFilterExport::<Refusing>::filter(vec![cand("a"), cand("b")]);
        let err = Err("no model directory configured".to_string());
        assert_eq!(out, [err.clone(), err]);
    }

    #[test]
    fn specialist_export_uses_both_traits_and_batch_overrides() {
        assert_eq!(S::describe().world, WorldKind::Specialist);
        let req = PromptRequest {
            sample: sample("k7"),
            seed: 0,
            round: 0,
        };
        let out = S::render(vec![req]);
        assert_eq!(out[0].as_ref().unwrap().text, "<image>\nk7");
        let o = |a: &str| SpecialistOutput {
            sample: sample("k"),
            task: "t".into(),
            prompt: String::new(),
            answer: a.into(),
            model: "m".into(),
        };
        let out = S::process(vec![o("a"), o("b")]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_ref().unwrap().dropped, ["a", "b"]);
    }
}
