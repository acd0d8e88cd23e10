//! Chat templates from the checkpoint (`chat_template.jinja`, `chat_template.json`,
//! `tokenizer_config.json` or `processor_config.json`), rendered with minijinja configured
//! like transformers' Jinja environment (trim/lstrip blocks, Python string methods,
//! `raise_exception`).

use std::path::{Path, PathBuf};

use minijinja::{Environment, Error, ErrorKind, context};
use serde_json::Value;

use super::VlmError;
use super::tokenizer::VlmTokenizer;

/// A compiled chat template with the special tokens it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    file: PathBuf,
    bos_token: String,
    eos_token: String,
}

fn template_in(v: &Value) -> Option<String> {
    match v.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        // A list of named templates: take "default", else the first.
        Value::Array(a) => a
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| a.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

fn read(path: &Path) -> Result<String, VlmError> {
    std::fs::read_to_string(path).map_err(|e| VlmError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

fn special(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl ChatTemplate {
    /// Finds the checkpoint's chat template; `None` when it has none.
    pub fn load(dir: &Path, tok: &VlmTokenizer) -> Result<Option<Self>, VlmError> {
        let tcfg_path = dir.join("tokenizer_config.json");
        let tcfg: Value = if tcfg_path.exists() {
            serde_json::from_str(&read(&tcfg_path)?).map_err(|e| VlmError::Config {
                file: tcfg_path.clone(),
                msg: e.to_string(),
            })?
        } else {
            Value::Null
        };
        let mut found = None;
        for name in [
            "chat_template.jinja",
            "chat_template.json",
            "tokenizer_config.json",
            "processor_config.json",
        ] {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            let text = read(&path)?;
            let source = if name.ends_with(".jinja") {
                Some(text)
            } else {
                let v: Value = serde_json::from_str(&text).map_err(|e| VlmError::Config {
                    file: path.clone(),
                    msg: e.to_string(),
                })?;
                template_in(&v)
            };
            if let Some(s) = source {
                found = Some((path, s));
                break;
            }
        }
        let Some((file, source)) = found else {
            return Ok(None);
        };
        let eos_default = tok
            .eos_token_ids
            .first()
            .and_then(|&i| tok.id_to_token(i))
            .unwrap_or_default();
        Self::new(
            &file,
            source,
            special(&tcfg, "bos_token").unwrap_or_default(),
            special(&tcfg, "eos_token").unwrap_or(eos_default),
        )
        .map(Some)
    }

    /// Compiles a template source; `file` names it in errors.
    pub fn new(
        file: &Path,
        source: String,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, VlmError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source)
            .map_err(|e| VlmError::Template {
                file: file.to_path_buf(),
                msg: e.to_string(),
            })?;
        Ok(Self {
            env,
            file: file.to_path_buf(),
            bos_token,
            eos_token,
        })
    }

    /// Renders a conversation (`[{"role": ..., "content": ...}]`) with a generation prompt.
    pub fn render(&self, messages: &Value) -> Result<String, VlmError> {
        self.render_with(messages, true)
    }

    /// Renders a conversation, with or without the generation prompt (training renders
    /// whole conversations without it).
    pub fn render_with(
        &self,
        messages: &Value,
        add_generation_prompt: bool,
    ) -> Result<String, VlmError> {
        let t = self.env.get_template("chat").map_err(|e| self.err(e))?;
        t.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| self.err(e))
    }

    /// Renders one user turn holding `n_images` images followed by `text`, the way
    /// transformers' processors pass multimodal content.
    pub fn render_user(&self, text: &str, n_images: usize) -> Result<String, VlmError> {
        let mut content: Vec<Value> = (0..n_images)
            .map(|_| serde_json::json!({"type": "image"}))
            .collect();
        content.push(serde_json::json!({"type": "text", "text": text}));
        self.render(&serde_json::json!([{"role": "user", "content": content}]))
    }

    /// The BOS token text the template sees.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    fn err(&self, e: Error) -> VlmError {
        VlmError::Template {
            file: self.file.clone(),
            msg: e.to_string(),
        }
    }
}

/// VILA's built-in conversation templates (`llava/conversation.py`), for VILA checkpoints
/// whose tokenizer carries no chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VilaConversation {
    /// `vicuna_v1` ("USER: ... ASSISTANT:"), VILA1.5-3b and -13b.
    VicunaV1,
    /// `llama_3`, VILA1.5-8b.
    Llama3,
    /// `hermes-2` (ChatML), VILA1.5-40b.
    Hermes2,
}

impl VilaConversation {
    /// Parses a VILA conversation mode name (`vicuna_v1`/`v1`, `llama_3`, `hermes-2`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "vicuna_v1" | "v1" => Self::VicunaV1,
            "llama_3" => Self::Llama3,
            "hermes-2" => Self::Hermes2,
            _ => return None,
        })
    }

    /// The mode VILA picks from a model path (`CONVERSATION_MODE_MAPPING`).
    pub fn for_model_path(path: &Path) -> Option<Self> {
        let p = path.to_string_lossy().to_lowercase();
        [
            ("vila1.5-3b", Self::VicunaV1),
            ("vila1.5-8b", Self::Llama3),
            ("vila1.5-13b", Self::VicunaV1),
            ("vila1.5-40b", Self::Hermes2),
            ("llama-3", Self::Llama3),
            ("llama3", Self::Llama3),
        ]
        .into_iter()
        .find(|(k, _)| p.contains(k))
        .map(|(_, v)| v)
    }

    /// What separates the generation prompt from the reply in VILA's training conversations
    /// (`"ASSISTANT: "` + reply for vicuna).
    pub fn reply_lead(self) -> &'static str {
        match self {
            Self::VicunaV1 => " ",
            Self::Llama3 | Self::Hermes2 => "",
        }
    }

    /// One user turn (`<image>\n` per image, then the text) and the assistant prompt, as
    /// VILA's `Conversation.get_prompt` renders them.
    pub fn render_user(self, text: &str, n_images: usize) -> String {
        let msg = format!("{}{text}", "<image>\n".repeat(n_images));
        match self {
            Self::VicunaV1 => format!(
                "A chat between a curious user and an artificial intelligence assistant. \
                 The assistant gives helpful, detailed, and polite answers to the user's questions. \
                 USER: {msg} ASSISTANT:"
            ),
            Self::Llama3 => format!(
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n\
                 You are a helpful language and vision assistant. You are able to understand the \
                 visual content that the user provides, and assist the user with a variety of \
                 tasks using natural language.<|eot_id|>\
                 <|start_header_id|>user<|end_header_id|>\n\n{msg}<|eot_id|>\
                 <|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
            Self::Hermes2 => format!(
                "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n{msg}\
                 <|im_end|><|im_start|>assistant\n"
            ),
        }
    }
}
