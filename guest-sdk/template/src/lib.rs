use vila2_guest::{Candidate, CaptionFilter, Plugin, Verdict, about};

#[derive(serde::Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct MinWords {
    min_words: usize,
}

impl Plugin for MinWords {
    type Config = Self;
    fn about() -> vila2_guest::About {
        about!(r#"{"type":"object","properties":{"min_words":{"type":"integer","minimum":0}}}"#)
    }
    fn new(config: Self) -> Result<Self, String> {
        Ok(config)
    }
}

impl CaptionFilter for MinWords {
    fn filter(&self, c: &Candidate) -> Result<Verdict, String> {
        if c.text.split_whitespace().count() < self.min_words.max(1) {
            return Ok(vila2_guest::reject(0.0, ["too-short"]));
        }
        Ok(vila2_guest::keep(1.0))
    }
}

vila2_guest::export_caption_filter!(MinWords);
