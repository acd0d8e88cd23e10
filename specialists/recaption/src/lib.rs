//! VILA²'s recaption prompts as a `prompt-template` plugin (paper arXiv 2407.17453; the prompts
//! are quoted verbatim from its recaption study).
//!
//! Config `{"recipe": "vila2" | "brief" | "long-v1" | "long-v2" | "long-v3", "image_token": true}`.
//! `vila2` (the default) is the paper's final recipe: one of long-v1..v3 per image, here picked
//! by a stable hash of (sample key, seed) so a run is reproducible. The prompt's `variant` names
//! the prompt used; with `image_token` the text starts with `<image>\n`.

use serde::{Deserialize, Serialize};
use vila2_guest::{About, Plugin, Prompt, PromptRequest, PromptTemplate};

/// "Describe the image briefly." — did not help in the paper.
pub const BRIEF: &str = "Describe the image briefly.";
/// long-v1.
pub const LONG_V1: &str = "Describe the image in details.";
/// long-v2.
pub const LONG_V2: &str = "Elaborate on the visual and narrative elements of the image in detail.";
/// long-v3: asks for confident, non-itemised, non-aesthetic descriptions.
pub const LONG_V3: &str = "Instead of describing the imaginary content, only describing the \
content one can determine confidently from the image. Do not describe the contents by itemizing \
them in list form. Minimize aesthetic descriptions as much as possible.";

/// Which prompt(s) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// One of long-v1..v3 per sample, deterministic in (key, seed).
    #[default]
    Vila2,
    Brief,
    LongV1,
    LongV2,
    LongV3,
}

/// The prompts the `vila2` recipe picks from, with their variant names.
pub const LONG: [(&str, &str); 3] = [
    ("long-v1", LONG_V1),
    ("long-v2", LONG_V2),
    ("long-v3", LONG_V3),
];

/// Configuration of the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub recipe: Recipe,
    /// Start the prompt with `<image>\n`.
    pub image_token: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recipe: Recipe::Vila2,
            image_token: true,
        }
    }
}

/// JSON Schema of [`Config`].
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "vila2-recaption config",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "recipe": {"enum": ["vila2", "brief", "long-v1", "long-v2", "long-v3"], "default": "vila2", "description": "vila2 picks one of long-v1..v3 per sample from (key, seed)"},
    "image_token": {"type": "boolean", "default": true, "description": "start the prompt with <image> and a newline"}
  }
}"#;

/// The variant name and instruction `recipe` gives for sample `key` under `seed`.
pub fn choose(recipe: Recipe, key: &str, seed: u64) -> (&'static str, &'static str) {
    match recipe {
        Recipe::Vila2 => LONG[vila2_guest::hash::pick(key, seed, LONG.len())],
        Recipe::Brief => ("brief", BRIEF),
        Recipe::LongV1 => LONG[0],
        Recipe::LongV2 => LONG[1],
        Recipe::LongV3 => LONG[2],
    }
}

/// The plugin.
#[derive(Debug, Clone, Default)]
pub struct Recaption {
    config: Config,
}

impl Plugin for Recaption {
    type Config = Config;

    fn about() -> About {
        vila2_guest::about!(SCHEMA)
    }

    fn new(config: Config) -> Result<Self, String> {
        Ok(Recaption { config })
    }
}

impl PromptTemplate for Recaption {
    fn render(&self, request: &PromptRequest) -> Result<Prompt, String> {
        let (variant, instruction) = choose(self.config.recipe, &request.sample.key, request.seed);
        Ok(Prompt {
            text: vila2_guest::image_prompt(instruction, self.config.image_token),
            variant: variant.to_string(),
        })
    }
}

vila2_guest::export_prompt_template!(Recaption);

#[cfg(test)]
mod tests {
    use super::*;
    use vila2_guest::Sample;

    fn request(key: &str, seed: u64) -> PromptRequest {
        PromptRequest {
            sample: Sample {
                key: key.into(),
                width: 640,
                height: 480,
                original_caption: "a vase".into(),
                metadata: vec![],
            },
            seed,
            round: 1,
        }
    }

    fn plugin(json: &str) -> Recaption {
        Recaption::new(vila2_guest::parse_config(json).unwrap()).unwrap()
    }

    #[test]
    fn fixed_recipes_give_the_papers_prompts_after_the_image_token() {
        for (recipe, variant, text) in [
            ("brief", "brief", "Describe the image briefly."),
            ("long-v1", "long-v1", "Describe the image in details."),
            (
                "long-v2",
                "long-v2",
                "Elaborate on the visual and narrative elements of the image in detail.",
            ),
            ("long-v3", "long-v3", LONG_V3),
        ] {
            let p = plugin(&format!(r#"{{"recipe": "{recipe}"}}"#))
                .render(&request("k", 0))
                .unwrap();
            assert_eq!(p.variant, variant);
            assert_eq!(p.text, format!("<image>\n{text}"));
        }
        assert!(
            LONG_V3.starts_with("Instead of describing the imaginary content, only describing")
        );
        assert!(LONG_V3.contains(
            "confidently from the image. Do not describe the contents by itemizing them"
        ));
        assert!(
            LONG_V3.ends_with("in list form. Minimize aesthetic descriptions as much as possible.")
        );
    }

    #[test]
    fn image_token_can_be_left_out() {
        let p = plugin(r#"{"recipe": "long-v1", "image_token": false}"#)
            .render(&request("k", 0))
            .unwrap();
        assert_eq!(p.text, LONG_V1);
    }

    #[test]
    fn vila2_recipe_is_deterministic_and_uses_all_long_prompts() {
        let t = plugin("{}");
        let mut seen = std::collections::BTreeMap::new();
        for i in 0..600 {
            let key = format!("coyo-{i:06}");
            let a = t.render(&request(&key, 42)).unwrap();
            let b = t.render(&request(&key, 42)).unwrap();
            assert_eq!(a, b);
            let (_, text) = LONG
                .iter()
                .find(|(v, _)| *v == a.variant)
                .expect("a long variant");
            assert_eq!(a.text, format!("<image>\n{text}"));
            *seen.entry(a.variant).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.values().all(|&n| n > 150), "{seen:?}");
    }

    #[test]
    fn vila2_pick_is_stable_across_builds() {
        // Golden values: a change here changes which prompt every existing run used.
        let picks: Vec<&str> = ["000000", "000001", "000002", "000003", "000004", "000005"]
            .iter()
            .map(|k| choose(Recipe::Vila2, k, 0).0)
            .collect();
        assert_eq!(picks, GOLDEN);
    }

    const GOLDEN: [&str; 6] = [
        "long-v3", "long-v2", "long-v3", "long-v1", "long-v2", "long-v1",
    ];

    #[test]
    fn seed_changes_the_pick_for_some_keys() {
        let moved = (0..100)
            .filter(|i| {
                let key = format!("{i}");
                choose(Recipe::Vila2, &key, 1) != choose(Recipe::Vila2, &key, 2)
            })
            .count();
        assert!(moved > 30, "{moved}");
    }

    #[test]
    fn unknown_recipe_is_a_config_error_naming_the_field() {
        let e = vila2_guest::parse_config::<Config>(r#"{"recipe": "long-v9"}"#).unwrap_err();
        assert!(e.contains("recipe") && e.contains("long-v9"), "{e}");
    }

    #[test]
    fn schema_lists_every_recipe() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let recipes = schema["properties"]["recipe"]["enum"].as_array().unwrap();
        for r in [
            Recipe::Vila2,
            Recipe::Brief,
            Recipe::LongV1,
            Recipe::LongV2,
            Recipe::LongV3,
        ] {
            assert!(recipes.contains(&serde_json::to_value(r).unwrap()), "{r:?}");
        }
    }
}
