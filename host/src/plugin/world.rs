//! The worlds a component can implement, and the exports each one requires.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WIT package every plugin is built against.
pub const PACKAGE: &str = "vila2:plugin@0.1.0";

/// A world of the `vila2:plugin` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Decides which captions are kept (`filter`).
    CaptionFilter,
    /// Chooses the prompt each sample is recaptioned with (`render`).
    PromptTemplate,
    /// Turns a specialist's answers into QA turns (`process`).
    PostProcessor,
    /// A specialist's prompt template and post-processor in one component.
    Specialist,
}

impl World {
    /// Every world, most specific first (the order [`World::detect`] tries them in).
    pub const ALL: [World; 4] = [
        World::Specialist,
        World::CaptionFilter,
        World::PromptTemplate,
        World::PostProcessor,
    ];

    /// The WIT name of the world.
    pub fn name(self) -> &'static str {
        match self {
            World::CaptionFilter => "caption-filter",
            World::PromptTemplate => "prompt-template",
            World::PostProcessor => "post-processor",
            World::Specialist => "specialist",
        }
    }

    /// Fully qualified names of the interfaces a component must export to implement the world.
    pub fn required_exports(self) -> Vec<String> {
        let names: &[&str] = match self {
            World::CaptionFilter => &["plugin", "filter"],
            World::PromptTemplate => &["plugin", "template"],
            World::PostProcessor => &["plugin", "processor"],
            World::Specialist => &["plugin", "template", "processor"],
        };
        names.iter().map(|n| qualified(n)).collect()
    }

    /// Whether a component of world `self` can be used where `wanted` is expected
    /// (a specialist is also a prompt template and a post-processor).
    pub fn satisfies(self, wanted: World) -> bool {
        self == wanted
            || (self == World::Specialist
                && matches!(wanted, World::PromptTemplate | World::PostProcessor))
    }

    /// The most specific world whose required exports are all in `exports`.
    pub fn detect(exports: &[String]) -> Option<World> {
        World::ALL
            .into_iter()
            .find(|w| w.missing_export(exports).is_none())
    }

    /// The first export `exports` lacks for this world, if any.
    pub fn missing_export(self, exports: &[String]) -> Option<String> {
        self.required_exports()
            .into_iter()
            .find(|req| !exports.iter().any(|e| e == req))
    }
}

/// `vila2:plugin/NAME@0.1.0`.
fn qualified(interface: &str) -> String {
    let (pkg, version) = PACKAGE.split_once('@').expect("package has a version");
    format!("{pkg}/{interface}@{version}")
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for World {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown world `{s}`: expected one of caption-filter, prompt-template, \
                     post-processor, specialist"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_most_specific_world() {
        let spec = World::Specialist.required_exports();
        assert_eq!(World::detect(&spec), Some(World::Specialist));
        let filter = World::CaptionFilter.required_exports();
        assert_eq!(World::detect(&filter), Some(World::CaptionFilter));
        assert_eq!(World::detect(&["vila2:plugin/plugin@0.1.0".into()]), None);
        assert_eq!(
            World::PromptTemplate.missing_export(&filter).as_deref(),
            Some("vila2:plugin/template@0.1.0")
        );
    }

    #[test]
    fn specialist_serves_as_template_and_processor() {
        assert!(World::Specialist.satisfies(World::PromptTemplate));
        assert!(World::Specialist.satisfies(World::PostProcessor));
        assert!(!World::Specialist.satisfies(World::CaptionFilter));
        assert!(!World::PromptTemplate.satisfies(World::Specialist));
        assert_eq!("post-processor".parse::<World>(), Ok(World::PostProcessor));
        assert!(
            "filter"
                .parse::<World>()
                .unwrap_err()
                .contains("caption-filter")
        );
    }
}
