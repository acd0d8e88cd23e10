//! The checkpoint's tokenizer (`tokenizer.json` through the `tokenizers` crate), used the way
//! transformers' LLaVA processor uses it: `<image>` is expanded to one token per image
//! feature, then the text is encoded with the tokenizer's own special tokens.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

use super::VlmError;

/// A tokenizer plus the ids generation needs.
pub struct VlmTokenizer {
    tok: Tokenizer,
    file: PathBuf,
    /// The image placeholder as text (usually `<image>`).
    pub image_token: String,
    /// Its id.
    pub image_token_id: i64,
    /// Ids that end generation.
    pub eos_token_ids: Vec<i64>,
    /// Id used for left padding.
    pub pad_token_id: i64,
    /// VILA mode: the image token is not in the vocabulary; prompts are split at it and
    /// each chunk tokenized alone (`tokenizer_image_token`).
    split_images: bool,
    bos_token_id: Option<i64>,
}

fn read_json_opt(path: &Path) -> Result<Option<Value>, VlmError> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| VlmError::Config {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })
}

/// A special token as written in `tokenizer_config.json` (a string or `{"content": ...}`).
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn ids_of(v: Option<&Value>) -> Vec<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64().into_iter().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        _ => Vec::new(),
    }
}

impl VlmTokenizer {
    /// Loads `dir/tokenizer.json`. The image token is taken from `processor_config.json` or
    /// `tokenizer_config.json` (`image_token`, default `<image>`) and must exist in the
    /// vocabulary with `image_token_id` (from the model config). EOS ids come from
    /// `generation_config.json`, else `config_eos`, else the tokenizer's `eos_token`.
    pub fn load(dir: &Path, image_token_id: i64, config_eos: &[i64]) -> Result<Self, VlmError> {
        Self::load_inner(dir, Some(image_token_id), config_eos)
    }

    /// Loads the tokenizer of a VILA1.5 `llm/` folder: `<image>` is a text marker, replaced
    /// by [`super::vila::IMAGE_TOKEN_INDEX`] placeholders as VILA's `tokenizer_image_token`
    /// does.
    pub fn load_vila(dir: &Path, config_eos: &[i64]) -> Result<Self, VlmError> {
        Self::load_inner(dir, None, config_eos)
    }

    fn load_inner(
        dir: &Path,
        image_token_id: Option<i64>,
        config_eos: &[i64],
    ) -> Result<Self, VlmError> {
        let file = dir.join("tokenizer.json");
        if !file.exists() {
            return Err(VlmError::Tokenizer {
                file,
                msg: "not found (only tokenizer.json is supported)".into(),
            });
        }
        let tok = Tokenizer::from_file(&file).map_err(|e| VlmError::Tokenizer {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        let tcfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let pcfg = read_json_opt(&dir.join("processor_config.json"))?.unwrap_or(Value::Null);
        let gcfg = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
        let image_token = token_text(pcfg.get("image_token"))
            .or_else(|| token_text(tcfg.get("image_token")))
            .unwrap_or_else(|| "<image>".into());
        let (image_token_id, split_images) = match image_token_id {
            None => (super::vila::IMAGE_TOKEN_INDEX, true),
            Some(want) => {
                let id = tok.token_to_id(&image_token).ok_or_else(|| VlmError::Tokenizer {
                    file: file.clone(),
                    msg: format!(
                        "has no image token {image_token:?}; add it as a special token (the model expects id {want})"
                    ),
                })?;
                if i64::from(id) != want {
                    return Err(VlmError::Tokenizer {
                        file: file.clone(),
                        msg: format!(
                            "image token {image_token:?} has id {id} but config.json says image_token_index {want}"
                        ),
                    });
                }
                (want, false)
            }
        };
        let lookup = |key: &str| {
            token_text(tcfg.get(key))
                .and_then(|t| tok.token_to_id(&t))
                .map(i64::from)
        };
        let mut eos_token_ids = ids_of(gcfg.get("eos_token_id"));
        if eos_token_ids.is_empty() {
            eos_token_ids = config_eos.to_vec();
        }
        if eos_token_ids.is_empty() {
            eos_token_ids = lookup("eos_token").into_iter().collect();
        }
        let pad_token_id = ids_of(gcfg.get("pad_token_id"))
            .first()
            .copied()
            .or_else(|| lookup("pad_token"))
            .or_else(|| eos_token_ids.first().copied())
            .unwrap_or(0);
        let bos_token_id = lookup("bos_token");
        Ok(Self {
            tok,
            file,
            image_token,
            image_token_id,
            eos_token_ids,
            pad_token_id,
            split_images,
            bos_token_id,
        })
    }

    /// Encodes a prompt in which each image placeholder is expanded to `n_features` copies,
    /// adding the tokenizer's special tokens when `special` (as transformers' processor does
    /// for raw prompts; rendered chat templates already hold them).
    pub fn encode_prompt(
        &self,
        prompt: &str,
        n_features: usize,
        special: bool,
    ) -> Result<Vec<i64>, VlmError> {
        if self.split_images {
            return self.encode_split(prompt, n_features, special);
        }
        let expanded = prompt.replace(&self.image_token, &self.image_token.repeat(n_features));
        self.encode(&expanded, special)
    }

    /// VILA's `tokenizer_image_token`: chunks between `<image>` markers are tokenized
    /// separately; when the first chunk starts with BOS, the first token of every chunk is
    /// dropped and BOS kept once; each marker becomes `n_features` placeholder ids.
    fn encode_split(
        &self,
        prompt: &str,
        n_features: usize,
        special: bool,
    ) -> Result<Vec<i64>, VlmError> {
        let chunks = prompt
            .split(self.image_token.as_str())
            .map(|c| self.encode(c, special))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ids = Vec::new();
        let offset = match (chunks.first().and_then(|c| c.first()), self.bos_token_id) {
            (Some(&first), Some(bos)) if first == bos => {
                ids.push(first);
                1
            }
            _ => 0,
        };
        for (i, chunk) in chunks.iter().enumerate() {
            if i > 0 {
                ids.extend(std::iter::repeat_n(self.image_token_id, n_features));
            }
            ids.extend(chunk.iter().skip(offset));
        }
        Ok(ids)
    }

    /// Number of image placeholders in a prompt.
    pub fn count_images(&self, prompt: &str) -> usize {
        prompt.matches(&self.image_token).count()
    }

    /// Encodes text, with or without the tokenizer's special tokens.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<i64>, VlmError> {
        let enc = self.encoding(text, special)?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Encodes text without special tokens, with the byte offset in `text` where each token
    /// ends (what a caller needs to map token scores back onto words and sentences).
    pub fn encode_with_ends(&self, text: &str) -> Result<(Vec<i64>, Vec<usize>), VlmError> {
        let enc = self.encoding(text, false)?;
        let ids = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
        // Offsets are byte ranges; keep the ends non-decreasing for tokens a normalizer
        // merged or that carry no text of their own.
        let mut last = 0;
        let ends = enc
            .get_offsets()
            .iter()
            .map(|&(_, end)| {
                last = last.max(end.min(text.len()));
                last
            })
            .collect();
        Ok((ids, ends))
    }

    fn encoding(&self, text: &str, special: bool) -> Result<tokenizers::Encoding, VlmError> {
        self.tok
            .encode(text, special)
            .map_err(|e| VlmError::Tokenizer {
                file: self.file.clone(),
                msg: format!("cannot encode {text:?}: {e}"),
            })
    }

    /// Decodes ids to text, skipping special tokens.
    pub fn decode(&self, ids: &[i64]) -> Result<String, VlmError> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.tok
            .decode(&ids, true)
            .map_err(|e| VlmError::Tokenizer {
                file: self.file.clone(),
                msg: format!("cannot decode: {e}"),
            })
    }

    /// The text of a token (for the chat template's special tokens).
    pub fn id_to_token(&self, id: i64) -> Option<String> {
        self.tok.id_to_token(id as u32)
    }
}
