//! Human judging through the API and the pages, on a real tiny run (two self-augmentation
//! rounds) taken to its end by the worker: blind items (no sources, no keys), randomised and
//! balanced sides, one vote per member and item, the report against a hand computation,
//! cross-team isolation, and clear refusals (SQLite and PostgreSQL).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::runs::{call, dataset, get_ok, raw, run_request, send, submit, tiny};
use common::{ADMIN, Backend, TestApp, skip_postgres};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use vila2_host::pipeline::provenance::Provenance;
use vila2_web::entities::{judging_vote, run};
use vila2_web::runs::worker::{self, Outcome};

/// A form post to `uri` with a bearer token and the CSRF cookie `csrf`; (status, headers, body).
async fn post_form(
    router: &Router,
    uri: &str,
    token: &str,
    form: String,
    csrf: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let req = Request::post(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(COOKIE, format!("vila2_csrf={csrf}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    send(router, req).await
}

/// The Wilson score interval, written out independently of the portal's code.
fn wilson_by_hand(x: f64, n: f64) -> (f64, f64) {
    let z = 1.959963984540054_f64;
    let p = x / n;
    let lo = (p + z * z / (2.0 * n) - z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt())
        / (1.0 + z * z / n);
    let hi = (p + z * z / (2.0 * n) + z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt())
        / (1.0 + z * z / n);
    (lo.max(0.0), hi.min(1.0))
}

/// How many samples of the run's last round can be judged in each pair (`a|b`): both captions
/// present, non-empty and different. Read from the shards' provenance directly.
fn judgeable(out: &Path, rounds: u32) -> BTreeMap<String, usize> {
    let shards = vila2_host::data::list_shards(&out.join(format!("round-{rounds}/data"))).unwrap();
    let mut samples: Vec<Provenance> = Vec::new();
    for shard in shards {
        for raw in vila2_host::data::read_shard(&shard).unwrap() {
            samples.push(serde_json::from_slice(&raw.members["json"]).unwrap());
        }
    }
    let caption = |p: &Provenance, source: &str| -> Option<String> {
        let c = if source == "original" {
            Some(p.org_caption.clone())
        } else {
            let k: u32 = source.strip_prefix("round:").unwrap().parse().unwrap();
            p.rounds
                .iter()
                .find(|r| r.round == k)
                .and_then(|r| r.recaption.clone())
        };
        c.map(|c| c.trim().to_string()).filter(|c| !c.is_empty())
    };
    let mut pairs = vec![("original".to_string(), format!("round:{}", 1))];
    for k in 2..=rounds {
        pairs.push(("original".into(), format!("round:{k}")));
    }
    for j in 1..=rounds {
        for k in j + 1..=rounds {
            pairs.push((format!("round:{j}"), format!("round:{k}")));
        }
    }
    pairs
        .into_iter()
        .map(|(a, b)| {
            let n = samples
                .iter()
                .filter(|p| match (caption(p, &a), caption(p, &b)) {
                    (Some(x), Some(y)) => x != y,
                    _ => false,
                })
                .count();
            (format!("{a}|{b}"), n.min(100))
        })
        .collect()
}

/// Asserts a payload shown before voting says nothing about sources or samples.
fn assert_blind(text: &str, keys: &[String]) {
    let lower = text.to_lowercase();
    for word in [
        "round:", "round 1", "round 2", "round-", "original", "source", "pair",
    ] {
        assert!(!lower.contains(word), "`{word}` leaks in {text}");
    }
    for key in keys {
        assert!(
            !text.contains(&format!("\"{key}\"")),
            "sample key {key} leaks in {text}"
        );
    }
}

both_backends!(judging_a_tiny_run);

async fn judging_a_tiny_run(app: &TestApp) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (router, state) = tiny(app);
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "alpha", "alice@example.org", "member")
        .await;
    let carol = app
        .add_member(&admin, team, "carol@example.org", "member")
        .await;
    let (bob_team, bob) = app
        .team_with_member(&admin, "beta", "bob@example.org", "member")
        .await;
    let ds = dataset(&router, team, &alice).await;
    let runs_uri = format!("/api/v1/teams/{team}/runs");
    let submitted = submit(&router, team, &alice, run_request(ds, 2)).await;
    let id = submitted["id"].as_i64().unwrap();
    let base = format!("{runs_uri}/{id}/judging");

    // Not finished yet: judging is refused with a clear conflict, the report says why.
    let (status, answer) = call(&router, Method::GET, &format!("{base}/next"), &alice, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("queued"),
        "{answer}"
    );
    let (status, answer) = call(
        &router,
        Method::POST,
        &format!("{base}/votes"),
        &alice,
        Some(json!({"item_id": 1, "choice": "left"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("succeeded"),
        "{answer}"
    );
    let report = get_ok(&router, &format!("{base}/report"), &alice).await;
    assert_eq!(report["open"], false, "{report}");
    assert_eq!(report["pairs"], json!([]), "{report}");

    let (ran, outcome) = worker::run_next(&state)
        .await
        .unwrap()
        .expect("the queued run");
    assert_eq!((ran as i64, outcome), (id, Outcome::Succeeded));

    // The pairs and their item counts follow from the run's folder.
    let out = app.dir.path().join(format!("runs/{id}/out"));
    let expected_items = judgeable(&out, 2);
    let keys: Vec<String> = vila2_host::data::read_shard(
        &vila2_host::data::list_shards(&out.join("round-2/data")).unwrap()[0],
    )
    .unwrap()
    .into_iter()
    .map(|r| r.key)
    .collect();
    let report = get_ok(&router, &format!("{base}/report"), &alice).await;
    assert_eq!(report["open"], true, "{report}");
    let labels: Vec<&str> = report["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "original vs round 1",
            "original vs round 2",
            "round 1 vs round 2"
        ]
    );
    let pair_key = |p: &Value| {
        format!(
            "{}|{}",
            p["a"]["source"].as_str().unwrap(),
            p["b"]["source"].as_str().unwrap()
        )
    };
    for p in report["pairs"].as_array().unwrap() {
        assert_eq!(p["items"], expected_items[&pair_key(p)], "{p}");
        assert_eq!(p["votes"], 0, "{p}");
        assert!(p["a"]["rate"].is_null(), "{p}");
    }
    let total: usize = expected_items.values().sum();
    assert!(
        expected_items["original|round:1"] >= 2,
        "the tiny run recaptioned at least two samples differently: {expected_items:?}"
    );

    // Errors name the field; an item of no such run is a 404.
    for (body, status, field) in [
        (
            json!({"item_id": 1, "choice": "maybe"}),
            StatusCode::BAD_REQUEST,
            "choice",
        ),
        (
            json!({"item_id": 1, "choice": "A"}),
            StatusCode::BAD_REQUEST,
            "choice",
        ),
        (json!({"item_id": 1}), StatusCode::BAD_REQUEST, "choice"),
        (
            json!({"item_id": "x", "choice": "left"}),
            StatusCode::BAD_REQUEST,
            "item_id",
        ),
        (
            json!({"item_id": 1, "choice": "left", "why": 1}),
            StatusCode::BAD_REQUEST,
            "why",
        ),
        (
            json!({"item_id": 999999, "choice": "left"}),
            StatusCode::NOT_FOUND,
            "item_id",
        ),
    ] {
        let (got, answer) = call(
            &router,
            Method::POST,
            &format!("{base}/votes"),
            &alice,
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body} -> {answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(msg.contains(field), "{body}: `{msg}` should name {field}");
    }

    // Alice judges every item; choices cycle so every outcome occurs. Her tally per pair is
    // (a wins, b wins, ties), from the sources each vote's answer reveals.
    let mut tally: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let mut orders: HashMap<String, (bool, bool)> = HashMap::new();
    let mut revealed: Vec<(i64, String, String)> = Vec::new();
    let choices = ["left", "right", "same", "left", "left"];
    let count = |tally: &mut HashMap<String, (u64, u64, u64)>,
                 a_src: &str,
                 b_src: &str,
                 choice: &str,
                 delta: i64| {
        let (pair, left_is_a) = if a_src == "original" || a_src < b_src {
            (format!("{a_src}|{b_src}"), true)
        } else {
            (format!("{b_src}|{a_src}"), false)
        };
        let t = tally.entry(pair).or_default();
        let slot = match (choice, left_is_a) {
            ("same", _) => &mut t.2,
            ("left", true) | ("right", false) => &mut t.0,
            _ => &mut t.1,
        };
        *slot = (*slot as i64 + delta) as u64;
    };
    let mut seen_ids = Vec::new();
    for n in 0.. {
        let next = get_ok(&router, &format!("{base}/next"), &alice).await;
        assert_eq!(next["total"], total, "{next}");
        assert_eq!(next["voted"], n, "{next}");
        if next["item"].is_null() {
            assert_eq!(n, total, "every item was served once");
            break;
        }
        let item = &next["item"];
        let mut fields: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            ["caption_a", "caption_b", "id", "image_url"],
            "{item}"
        );
        assert_blind(&next.to_string(), &keys);
        let item_id = item["id"].as_i64().unwrap();
        assert!(!seen_ids.contains(&item_id), "item {item_id} served twice");
        seen_ids.push(item_id);
        if n == 0 {
            let (status, headers, bytes) = raw(
                &router,
                Method::GET,
                item["image_url"].as_str().unwrap(),
                &alice,
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[CONTENT_TYPE], "image/png");
            assert!(image::load_from_memory(&bytes).is_ok(), "the image decodes");
        }
        let choice = choices[n % choices.len()];
        let (status, vote) = call(
            &router,
            Method::POST,
            &format!("{base}/votes"),
            &alice,
            Some(json!({"item_id": item_id, "choice": choice})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{vote}");
        assert_eq!(vote["replaced"], false, "{vote}");
        assert_eq!(vote["choice"], choice);
        let (a, b) = (
            vote["source_a"].as_str().unwrap(),
            vote["source_b"].as_str().unwrap(),
        );
        assert_ne!(a, b);
        // Which side the earlier source was shown on.
        let earlier_left = a == "original" || (b != "original" && a < b);
        let pair = if earlier_left {
            format!("{a}|{b}")
        } else {
            format!("{b}|{a}")
        };
        let o = orders.entry(pair).or_default();
        if earlier_left {
            o.0 = true
        } else {
            o.1 = true
        }
        count(&mut tally, a, b, choice, 1);
        revealed.push((item_id, a.to_string(), b.to_string()));
    }
    for (pair, n) in &expected_items {
        if *n >= 2 {
            assert_eq!(orders[pair], (true, true), "{pair}: both orders occur");
        }
    }

    // Voting again changes the vote instead of adding one.
    let (first, a, b) = revealed[0].clone();
    let (status, vote) = call(
        &router,
        Method::POST,
        &format!("{base}/votes"),
        &alice,
        Some(json!({"item_id": first, "choice": "same"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{vote}");
    assert_eq!(vote["replaced"], true, "{vote}");
    count(&mut tally, &a, &b, choices[0], -1);
    count(&mut tally, &a, &b, "same", 1);
    let stored = judging_vote::Entity::find()
        .filter(judging_vote::Column::RunId.eq(id as i32))
        .count(&state.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, total, "one vote per member and item");

    // Carol's first two items: she starts from the first item, independently of Alice.
    for _ in 0..2 {
        let next = get_ok(&router, &format!("{base}/next"), &carol).await;
        let item_id = next["item"]["id"].as_i64().unwrap();
        let (status, vote) = call(
            &router,
            Method::POST,
            &format!("{base}/votes"),
            &carol,
            Some(json!({"item_id": item_id, "choice": "right"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{vote}");
        count(
            &mut tally,
            vote["source_a"].as_str().unwrap(),
            vote["source_b"].as_str().unwrap(),
            "right",
            1,
        );
    }
    assert_eq!(seen_ids.len(), total);

    // Another team's member: 404 on every judging route, through their own team too, and no
    // vote lands.
    let item_uri = format!("{base}/items/{first}/image");
    let bob_base = format!("/api/v1/teams/{bob_team}/runs/{id}/judging");
    for (method, uri, body) in [
        (Method::GET, format!("{base}/next"), None),
        (Method::GET, format!("{base}/report"), None),
        (Method::GET, item_uri.clone(), None),
        (
            Method::POST,
            format!("{base}/votes"),
            Some(json!({"item_id": first, "choice": "left"})),
        ),
        (Method::GET, format!("{bob_base}/next"), None),
        (Method::GET, format!("{bob_base}/report"), None),
        (Method::GET, format!("{bob_base}/items/{first}/image"), None),
        (
            Method::POST,
            format!("{bob_base}/votes"),
            Some(json!({"item_id": first, "choice": "left"})),
        ),
        (
            Method::GET,
            format!("/teams/{team}/runs/{id}/judging"),
            None,
        ),
        (
            Method::GET,
            format!("/teams/{team}/runs/{id}/judging/report"),
            None,
        ),
    ] {
        let (status, answer) = call(&router, method.clone(), &uri, &bob, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {answer}");
    }
    let csrf = "0123456789abcdef0123456789abcdef";
    let (status, _, _) = post_form(
        &router,
        &format!("/teams/{team}/runs/{id}/judging"),
        &bob,
        format!("csrf={csrf}&item_id={first}&choice=left"),
        csrf,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stored_after = judging_vote::Entity::find()
        .filter(judging_vote::Column::RunId.eq(id as i32))
        .count(&state.db)
        .await
        .unwrap();
    assert_eq!(stored_after as usize, total + 2, "bob's vote did not land");

    // The report equals the hand computation.
    let report = get_ok(&router, &format!("{base}/report"), &alice).await;
    assert_eq!(report["votes"], total + 2, "{report}");
    assert_eq!(report["judges"], 2, "{report}");
    assert!(
        report["convention"].as_str().unwrap().contains("half"),
        "{report}"
    );
    for p in report["pairs"].as_array().unwrap() {
        let (aw, bw, ties) = tally.get(&pair_key(p)).copied().unwrap_or_default();
        let n = aw + bw + ties;
        assert_eq!(
            (&p["a"]["wins"], &p["b"]["wins"], &p["ties"], &p["votes"]),
            (&json!(aw), &json!(bw), &json!(ties), &json!(n)),
            "{p}"
        );
        if n == 0 {
            assert!(
                p["a"]["rate"].is_null() && p["b"]["ci_low"].is_null(),
                "{p}"
            );
            continue;
        }
        for (side, wins) in [("a", aw), ("b", bw)] {
            let x = wins as f64 + ties as f64 / 2.0;
            let rate = x / n as f64;
            let (lo, hi) = wilson_by_hand(x, n as f64);
            let got = |f: &str| p[side][f].as_f64().unwrap();
            assert!((got("rate") - rate).abs() < 1e-9, "{side} rate {p}");
            assert!((got("ci_low") - lo).abs() < 1e-9, "{side} ci_low {p}");
            assert!((got("ci_high") - hi).abs() < 1e-9, "{side} ci_high {p}");
        }
    }

    // Pages: Alice has judged everything; Carol sees a blind item, votes through the form
    // (CSRF checked), and the next page reveals what she voted on.
    let page = |token: String, uri: String| {
        let router = router.clone();
        async move {
            let (status, headers, bytes) = raw(&router, Method::GET, &uri, &token, None).await;
            (status, headers, String::from_utf8(bytes).unwrap())
        }
    };
    let judging_uri = format!("/teams/{team}/runs/{id}/judging");
    let (status, _, html) = page(alice.clone(), judging_uri.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("judged every item"), "{html}");
    let (status, _, html) = page(carol.clone(), judging_uri.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("A has fewer hallucinations") && html.contains("Same"),
        "{html}"
    );
    assert!(html.contains(&format!("Judged 2 of {total}")), "{html}");
    let start = html.find("<main>").unwrap();
    assert_blind(&html[start..], &[]);
    let item_id: i64 = html
        .split("name=\"item_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .parse()
        .unwrap();
    let form = format!("csrf={csrf}&item_id={item_id}&choice=left");
    let (status, _, _) = post_form(
        &router,
        &judging_uri,
        &carol,
        form.clone(),
        "ffffffffffffffffffffffffffffffff",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a stale CSRF token is refused"
    );
    let (status, headers, _) = post_form(&router, &judging_uri, &carol, form, csrf).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[LOCATION].to_str().unwrap().to_string();
    assert_eq!(location, format!("{judging_uri}?voted={item_id}"));
    let (_, _, html) = page(carol.clone(), location).await;
    assert!(html.contains("Caption A was"), "{html}");
    assert!(html.contains(&format!("Judged 3 of {total}")), "{html}");
    let (status, _, html) = post_form(
        &router,
        &judging_uri,
        &carol,
        format!("csrf={csrf}&item_id={item_id}&choice=maybe"),
        csrf,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&html).contains("choice"));
    let (status, _, html) = page(alice.clone(), format!("{judging_uri}/report")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("original vs round 1") && html.contains("half a win"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<span class=\"votes\">{}</span>", total + 3)),
        "{html}"
    );

    // A run that succeeded without a recaption round has nothing to judge.
    let other = submit(&router, team, &alice, run_request(ds, 0)).await;
    let other_id = other["id"].as_i64().unwrap();
    run::Entity::update_many()
        .col_expr(
            run::Column::Status,
            sea_orm::sea_query::Expr::value(run::SUCCEEDED),
        )
        .filter(run::Column::Id.eq(other_id as i32))
        .exec(&state.db)
        .await
        .unwrap();
    let (status, answer) = call(
        &router,
        Method::GET,
        &format!("{runs_uri}/{other_id}/judging/next"),
        &alice,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no self-augmentation round"),
        "{answer}"
    );
    let (status, html) = {
        let (s, _, h) = page(
            alice.clone(),
            format!("/teams/{team}/runs/{other_id}/judging"),
        )
        .await;
        (s, h)
    };
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("no self-augmentation round"), "{html}");
}
