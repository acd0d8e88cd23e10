//! Bad components and misbehaving guests: each gets a clear error, the host stays up, and the
//! next call on the same plugin works.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use vila2::plugin::records::{Candidate, Sample};
use vila2::plugin::{
    CacheHit, ItemError, Judge, Judgement, Plugin, PluginError, PluginRuntime, RuntimeConfig, World,
};

fn faulty_bytes() -> Vec<u8> {
    std::fs::read(common::component("vila2_faulty_plugin")).unwrap()
}

/// Tests share one artifact cache so each compiles the component at most once.
fn config() -> RuntimeConfig {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    RuntimeConfig {
        cache_dir: Some(target.join("vila2-test-cache")),
        fuel_per_item: 20_000_000,
        ..RuntimeConfig::default()
    }
}

fn faulty(cfg: RuntimeConfig) -> Plugin {
    let rt = PluginRuntime::new(cfg).unwrap();
    rt.load_bytes("faulty.wasm", &faulty_bytes(), World::CaptionFilter)
        .unwrap()
}

fn cand(key: &str, text: &str) -> Candidate {
    Candidate {
        sample: Sample {
            key: key.into(),
            width: 64,
            height: 48,
            original_caption: "a photo".into(),
            metadata: vec![("source".into(), "test".into())],
        },
        text: text.into(),
        model: "tiny".into(),
        round: 1,
        mean_logprob: Some(-1.5),
    }
}

/// A batch that triggers `mode` on its first item, plus one ordinary item.
fn fault(mode: &str) -> Vec<Candidate> {
    vec![
        cand("bad", &format!("fault:{mode}")),
        cand("other", "a red square"),
    ]
}

/// The plugin still answers an ordinary batch correctly.
fn assert_healthy(p: &Plugin) {
    let out = p
        .filter(&[cand("k1", "a blue circle"), cand("k2", "")])
        .unwrap();
    let v: Vec<_> = out.into_iter().map(|r| r.unwrap()).collect();
    assert!(v[0].keep && !v[1].keep, "{v:?}");
    assert!((v[0].score - 0.13).abs() < 1e-6);
}

fn trap_message(out: Vec<Result<vila2::plugin::records::Verdict, ItemError>>) -> String {
    assert_eq!(out.len(), 2, "one result per item");
    let msgs: Vec<String> = out
        .into_iter()
        .map(|r| match r {
            Err(ItemError::Trap(m)) => m,
            other => panic!("expected a trap, got {other:?}"),
        })
        .collect();
    assert_eq!(msgs[0], msgs[1], "every item of the batch gets the trap");
    msgs[0].clone()
}

#[test]
fn malformed_bytes_are_not_wasm() {
    let rt = PluginRuntime::new(config()).unwrap();
    let err = rt
        .load_bytes(
            "junk.wasm",
            b"this is not wasm at all",
            World::CaptionFilter,
        )
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("junk.wasm"));
    // A truncated component: right header, garbage body.
    let mut bytes = faulty_bytes();
    bytes.truncate(bytes.len() / 2);
    let err = rt
        .load_bytes("half.wasm", &bytes, World::CaptionFilter)
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::Compile { .. }), "{err}");
    assert!(err.to_string().contains("half.wasm"));
}

#[test]
fn core_module_is_refused_with_a_hint() {
    let rt = PluginRuntime::new(config()).unwrap();
    let module = wat::parse_str("(module (func (export \"filter\")))").unwrap();
    let err = rt
        .load_bytes("core.wasm", &module, World::CaptionFilter)
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[test]
fn wrong_world_names_the_missing_export() {
    let rt = PluginRuntime::new(config()).unwrap();
    let err = rt
        .load_bytes("faulty.wasm", &faulty_bytes(), World::PromptTemplate)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{msg}");
    assert!(msg.contains("vila2:plugin/template@0.1.0"), "{msg}");
    assert!(
        msg.contains("vila2:plugin/filter@0.1.0"),
        "lists what it exports: {msg}"
    );
    // An empty component implements nothing.
    let empty = wat::parse_str("(component)").unwrap();
    let err = rt
        .load_bytes("empty.wasm", &empty, World::CaptionFilter)
        .err()
        .unwrap();
    assert!(err.to_string().contains("exports: nothing"), "{err}");
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    std::fs::write(&path, faulty_bytes()).unwrap();
    let rt = PluginRuntime::new(RuntimeConfig {
        max_component_bytes: 1024,
        ..config()
    })
    .unwrap();
    let err = rt.load_file(&path, World::CaptionFilter).err().unwrap();
    assert!(
        matches!(err, PluginError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("big.wasm"));
    let err = rt
        .load_bytes("big", &faulty_bytes(), World::CaptionFilter)
        .err()
        .unwrap();
    assert!(matches!(err, PluginError::TooLarge { .. }), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let rt = PluginRuntime::new(config()).unwrap();
    let err = rt
        .load_file("/nonexistent/plugin.wasm".as_ref(), World::CaptionFilter)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/plugin.wasm"),
        "{err}"
    );
}

#[test]
fn invalid_config_is_refused_and_the_old_one_kept() {
    let p = faulty(config());
    let err = p.configure("{mode: ok").unwrap_err();
    assert!(matches!(err, PluginError::ConfigJson { .. }), "{err}");
    let err = p.configure(r#"{"speed": "fast"}"#).unwrap_err();
    assert!(matches!(err, PluginError::Config { .. }), "{err}");
    assert!(err.to_string().contains("speed"), "names the field: {err}");
    assert_healthy(&p);
    // An accepted config applies to every later instance, also after a trap.
    p.configure(r#"{"mode": "env"}"#).unwrap();
    let _ = p.filter(&fault("panic")).unwrap();
    let out = p.filter(&[cand("k", "text")]).unwrap();
    assert_eq!(out[0].as_ref().unwrap().reasons, vec!["env=0 args=0"]);
}

#[test]
fn result_list_of_wrong_length_is_a_per_item_error() {
    let p = faulty(config());
    let out = p.filter(&fault("wrong-length")).unwrap();
    for r in &out {
        match r {
            Err(ItemError::Contract(m)) => assert!(m.contains("1 results for a batch of 2"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_healthy(&p);
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let p = faulty(config());
    let msg = trap_message(p.filter(&fault("loop")).unwrap());
    assert!(msg.contains("ran out of fuel"), "{msg}");
    assert_healthy(&p);
}

#[test]
fn endless_loop_hits_the_deadline_when_fuel_is_plenty() {
    let p = faulty(RuntimeConfig {
        fuel_per_item: u64::MAX / 4,
        call_deadline: Duration::from_millis(150),
        ..config()
    });
    let start = Instant::now();
    let msg = trap_message(p.filter(&fault("loop")).unwrap());
    assert!(msg.contains("deadline of 150ms"), "{msg}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_healthy(&p);
}

#[test]
fn endless_allocation_hits_the_memory_cap() {
    let p = faulty(RuntimeConfig {
        memory_limit: 16 << 20,
        ..config()
    });
    let msg = trap_message(p.filter(&fault("alloc")).unwrap());
    assert!(msg.contains("memory cap of 16 MiB"), "{msg}");
    assert_healthy(&p);
}

#[test]
fn endless_recursion_exhausts_the_stack() {
    let p = faulty(config());
    let msg = trap_message(p.filter(&fault("recurse")).unwrap());
    assert!(msg.contains("call stack exhausted"), "{msg}");
    assert_healthy(&p);
    // Frames kept in linear memory overflow the guest's shadow stack first.
    let msg = trap_message(p.filter(&fault("recurse-big-frames")).unwrap());
    assert!(msg.contains("unbounded recursion"), "{msg}");
    assert_healthy(&p);
}

#[test]
fn panic_message_reaches_the_host() {
    let p = faulty(config());
    let msg = trap_message(p.filter(&fault("panic")).unwrap());
    assert!(msg.contains("faulty plugin panics on purpose"), "{msg}");
    assert_healthy(&p);
}

#[test]
fn no_files_no_sockets_no_environment() {
    let p = faulty(config());
    let out = p.filter(&fault("open-file")).unwrap();
    match &out[0] {
        Err(ItemError::Plugin(m)) => assert!(m.starts_with("open failed"), "{m}"),
        other => panic!("guest could open a host file: {other:?}"),
    }
    let out = p.filter(&fault("socket")).unwrap();
    match &out[0] {
        Err(ItemError::Plugin(m)) => assert!(m.starts_with("connect failed"), "{m}"),
        other => panic!("guest could open a socket: {other:?}"),
    }
    // SAFETY: single assignment of a variable only this test reads back through the guest.
    unsafe { std::env::set_var("VILA2_SECRET_FOR_TEST", "x") };
    let out = p.filter(&fault("env")).unwrap();
    assert_eq!(out[0].as_ref().unwrap().reasons, vec!["env=0 args=0"]);
    assert_healthy(&p);
}

#[test]
fn hundred_megabyte_string_is_contained() {
    // Under the default memory cap the guest cannot even build it.
    let p = faulty(config());
    let msg = trap_message(p.filter(&fault("huge-string")).unwrap());
    assert!(msg.contains("memory cap"), "{msg}");
    assert_healthy(&p);
    // With room to build it, the host refuses to copy it out of the guest.
    let p = faulty(RuntimeConfig {
        memory_limit: 512 << 20,
        fuel_per_item: 2_000_000_000,
        ..config()
    });
    let msg = trap_message(p.filter(&fault("huge-string")).unwrap());
    assert!(msg.contains("too much data"), "{msg}");
    assert_healthy(&p);
}

#[test]
fn judge_without_a_model_is_an_error_not_a_number() {
    let p = faulty(config());
    let out = p.filter(&[cand("k", "fault:judge")]).unwrap();
    match &out[0] {
        Err(ItemError::Plugin(m)) => assert!(m.contains("no VLM is loaded"), "{m}"),
        other => panic!("{other:?}"),
    }
}

struct LengthJudge;

impl Judge for LengthJudge {
    fn score(&self, key: &str, prompt: &str, text: &str) -> Result<Judgement, String> {
        assert_eq!(prompt, "Describe the image.");
        if key == "unknown" {
            return Err(format!("no image for sample `{key}`"));
        }
        let lp: Vec<f32> = text.split(' ').map(|w| -(w.len() as f32)).collect();
        Ok(Judgement {
            mean_logprob: lp.iter().sum::<f32>() / lp.len() as f32,
            token_logprobs: lp,
        })
    }
}

#[test]
fn judge_import_reaches_the_host_judge() {
    let rt = PluginRuntime::with_judge(config(), Arc::new(LengthJudge)).unwrap();
    let p = rt
        .load_bytes("faulty.wasm", &faulty_bytes(), World::CaptionFilter)
        .unwrap();
    p.configure(r#"{"mode": "judge"}"#).unwrap();
    let out = p
        .filter(&[
            cand("a", "ab cdef"),
            cand("b", "abcdefghij"),
            cand("unknown", "x"),
        ])
        .unwrap();
    let a = out[0].as_ref().unwrap();
    assert!(a.keep && (a.score - (-3.0f32).exp()).abs() < 1e-6, "{a:?}");
    assert!(!out[1].as_ref().unwrap().keep);
    assert!(matches!(&out[2], Err(ItemError::Plugin(m)) if m.contains("no image")));
}

#[test]
fn compiled_once_then_loaded_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    let bytes = faulty_bytes();
    let rt = PluginRuntime::new(cfg.clone()).unwrap();
    assert_eq!(rt.compile("f", &bytes).unwrap().1, CacheHit::Compiled);
    assert_eq!(rt.compile("f", &bytes).unwrap().1, CacheHit::Memory);
    let artifacts: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact, no temp files left");
    let rt2 = PluginRuntime::new(cfg).unwrap();
    assert_eq!(rt2.compile("f", &bytes).unwrap().1, CacheHit::Disk);
    let p = rt2.load_bytes("f", &bytes, World::CaptionFilter).unwrap();
    assert_healthy(&p);
    // A corrupted artifact is discarded and recompiled, not trusted.
    let art = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&art, b"garbage").unwrap();
    let rt3 = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..config()
    })
    .unwrap();
    assert_eq!(rt3.compile("f", &bytes).unwrap().1, CacheHit::Compiled);
}

#[test]
fn many_threads_share_one_plugin() {
    let p = faulty(config());
    std::thread::scope(|s| {
        for t in 0..4 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..20 {
                    if (t + i) % 7 == 0 {
                        let _ = p.filter(&fault("panic")).unwrap();
                    } else {
                        assert_healthy(&p);
                    }
                }
            });
        }
    });
}

#[test]
fn describe_reports_the_world() {
    let p = faulty(config());
    let d = p.describe().unwrap();
    assert_eq!(d.world, World::CaptionFilter);
    assert_eq!(d.name, "faulty");
    assert!(serde_json::from_str::<serde_json::Value>(&d.config_schema).is_ok());
    assert!(p.render(&[]).is_err(), "a filter has no render export");
}
