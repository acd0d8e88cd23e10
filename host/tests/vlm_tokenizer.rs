//! Prompt tokenization against transformers' LLaVA processor (`<image>` expanded to the
//! feature count, special tokens added by the tokenizer), and refusal of a tokenizer that
//! lacks the image token.

mod common;

use vila2::vlm::VlmError;
use vila2::vlm::config::LlavaConfig;
use vila2::vlm::tokenizer::VlmTokenizer;

fn check_ids(case: &str) {
    let dir = common::fixture(case);
    let exp = common::expected(&dir);
    let cfg = LlavaConfig::from_file(&dir.join("config.json")).unwrap();
    let tok = VlmTokenizer::load(&dir, cfg.image_token_id, &cfg.text.eos_token_ids).unwrap();
    let prompt = exp["prompt"].as_str().unwrap();
    let ids = tok
        .encode_prompt(prompt, cfg.image_feature_count(), true)
        .unwrap();
    assert_eq!(ids, common::ints(&exp["input_ids"]), "{case}");
    let text = exp["score"]["text"].as_str().unwrap();
    let cont = tok.encode(text, false).unwrap();
    assert_eq!(cont, common::ints(&exp["score"]["token_ids"]));
    // The same ids with where each token ends: non-decreasing, within the text, the last at
    // its end.
    let (ids, ends) = tok.encode_with_ends(text).unwrap();
    assert_eq!(ids, cont, "{case}");
    assert_eq!(ends.len(), ids.len());
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
    assert_eq!(
        ends.last().copied(),
        Some(text.trim_end().len()),
        "{case}: {ends:?}"
    );
}

#[test]
fn clip_prompt_ids_match_processor() {
    check_ids("clip_llama");
}

#[test]
fn siglip_full_strategy_prompt_ids_match_processor() {
    check_ids("siglip_qwen2");
}

#[test]
fn tokenizer_without_image_token_is_refused() {
    let dir = common::fixture("clip_llama");
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
    std::fs::write(
        tmp.path().join("tokenizer.json"),
        text.replace("<image>", "<picture>"),
    )
    .unwrap();
    match VlmTokenizer::load(tmp.path(), 4, &[2]) {
        Err(e @ VlmError::Tokenizer { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("tokenizer.json") && msg.contains("<image>"),
                "{msg}"
            );
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a tokenizer without <image> was accepted"),
    }
}

#[test]
fn chat_template_matches_processor_apply_chat_template() {
    for case in ["clip_llama", "siglip_qwen2"] {
        let dir = common::fixture(case);
        let exp = common::expected(&dir);
        let vlm = vila2::vlm::generate::Vlm::load(&dir, tch::Device::Cpu).unwrap();
        let chat = &exp["chat"];
        let msg = chat["message"].as_str().unwrap();
        assert_eq!(
            vlm.chat_prompt(msg, 1).unwrap(),
            chat["text"].as_str().unwrap()
        );
        let img = vila2::vlm::preprocess::load_image(&dir.join("image_a.png")).unwrap();
        let p = vlm.prepare_chat(msg, &[img]).unwrap();
        assert_eq!(p.ids, common::ints(&chat["input_ids"]), "{case}");
    }
}

#[test]
fn chat_template_from_tokenizer_config_string_or_named_list() {
    let dir = common::fixture("clip_llama");
    let tok = VlmTokenizer::load(&dir, 4, &[2]).unwrap();
    let template = "{{ bos_token }}{% for m in messages %}{{ m['role'] | upper }}: \
                    {% for c in m['content'] %}{% if c.type == 'image' %}<image>{% else %}{{ c.text.strip() }}{% endif %}{% endfor %}\
                    {% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}";
    let cases = [
        serde_json::json!({"bos_token": "<s>", "chat_template": template}),
        serde_json::json!({"bos_token": {"content": "<s>"}, "chat_template": [
            {"name": "tool_use", "template": "unused"},
            {"name": "default", "template": template},
        ]}),
    ];
    for cfg in cases {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let t = vila2::vlm::chat_template::ChatTemplate::load(tmp.path(), &tok)
            .unwrap()
            .expect("template found");
        assert_eq!(
            t.render_user("  Hi there ", 1).unwrap(),
            "<s>USER: <image>Hi there ASSISTANT:"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("chat_template.json"),
        serde_json::json!({"chat_template": "{{ raise_exception('no system role') }}"}).to_string(),
    )
    .unwrap();
    let t = vila2::vlm::chat_template::ChatTemplate::load(tmp.path(), &tok)
        .unwrap()
        .unwrap();
    let e = t.render_user("x", 0).unwrap_err().to_string();
    assert!(
        e.contains("no system role") && e.contains("chat_template.json"),
        "{e}"
    );
}
