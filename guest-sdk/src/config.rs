//! Typed plugin configuration from the JSON the host passes to `configure`.

use serde::de::DeserializeOwned;

/// Deserializes a config document. Empty input and `null` give `C::default()`. Errors name the
/// offending field by its path (`invalid config field `limits.max_words`: ...`).
pub fn parse_config<C: DeserializeOwned + Default>(json: &str) -> Result<C, String> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(C::default());
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let config: C = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid config: {}", e.inner())
        } else {
            format!("invalid config field `{path}`: {}", e.inner())
        }
    })?;
    de.end()
        .map_err(|e| format!("invalid config: trailing characters ({e})"))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        max_words: u32,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        min_words: u32,
        limits: Limits,
    }

    #[test]
    fn empty_and_null_give_default() {
        assert_eq!(parse_config::<Cfg>("").unwrap(), Cfg::default());
        assert_eq!(parse_config::<Cfg>(" null ").unwrap(), Cfg::default());
    }

    #[test]
    fn partial_document_fills_defaults() {
        let c: Cfg = parse_config(r#"{"min_words": 3}"#).unwrap();
        assert_eq!(c.min_words, 3);
        assert_eq!(c.limits.max_words, 0);
    }

    #[test]
    fn bad_type_names_the_nested_field() {
        let e = parse_config::<Cfg>(r#"{"limits": {"max_words": "ten"}}"#).unwrap_err();
        assert!(e.contains("`limits.max_words`"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = parse_config::<Cfg>(r#"{"min_wrds": 3}"#).unwrap_err();
        assert!(e.contains("min_wrds"), "{e}");
    }

    #[test]
    fn syntax_error_and_trailing_garbage_are_errors() {
        assert!(parse_config::<Cfg>("{").is_err());
        assert!(parse_config::<Cfg>("{} x").is_err());
    }
}
