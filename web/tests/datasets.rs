//! Dataset upload, validation, browsing and export, through the API and the pages, against
//! SQLite and PostgreSQL (see `common` for the harness). Archives are built here with the
//! `tar` and `zip` crates; the hostile ones by writing header bytes directly.

mod common;

use std::io::{Cursor, Write};
use std::path::PathBuf;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::Value;
use tower::ServiceExt;

use common::*;

both_backends!(
    shard_upload_browse_thumbnail_export,
    imagefolder_zip_and_tar_upload,
    hostile_archives_rejected_naming_the_member,
    quota_malformed_and_truncated_uploads_leave_nothing,
    datasets_of_another_team_are_404,
    dataset_page_and_form_upload,
);

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A PNG of noise: does not compress.
fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([200, 10, 10]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

/// A tar of `(name, bytes)` regular files.
fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A tar with one member written raw: `name` unchecked, of type `kind`, linking to `link`.
fn hostile_tar(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let ok = png(4, 4);
    let mut header = tar::Header::new_gnu();
    header.set_size(ok.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, "ok.png", &ok[..]).unwrap();
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"caption"
    } else {
        b""
    };
    header.set_size(data.len() as u64);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
    builder.into_inner().unwrap()
}

/// A zip of `(name, bytes)` files (deflated).
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const BOUNDARY: &str = "XDATASETBOUNDARYX";

/// A multipart body with `name` (if any) then `file`.
fn form(file_name: &str, bytes: &[u8], name: Option<&str>, csrf: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [("csrf", csrf), ("name", name)] {
        if let Some(value) = value {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_request(uri: &str, token: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

async fn upload(
    app: &TestApp,
    team: i64,
    token: &str,
    file_name: &str,
    bytes: &[u8],
    name: Option<&str>,
) -> (StatusCode, Value) {
    let req = multipart_request(
        &format!("/api/v1/teams/{team}/datasets"),
        token,
        form(file_name, bytes, name, None),
    );
    let (status, _, body) = app.send(req).await;
    (status, body)
}

/// Status and raw body bytes.
async fn get_bytes(app: &TestApp, uri: &str, token: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::get(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// Files under a folder of the test's data directory.
fn files_under(app: &TestApp, folder: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.dir.path().join(folder), &mut out);
    out
}

/// No dataset row for `team`, no shard object, no spooled upload.
async fn nothing_visible(app: &TestApp, team: i64, token: &str) {
    let (status, list) = app
        .get(&format!("/api/v1/teams/{team}/datasets"), token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, Value::Array(vec![]), "a dataset row is visible");
    assert_eq!(files_under(app, "objects/datasets"), Vec::<PathBuf>::new());
    assert_eq!(files_under(app, "tmp"), Vec::<PathBuf>::new());
}

async fn shard_upload_browse_thumbnail_export(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "team-a", "alice@example.org", "member")
        .await;
    let a_png = png(40, 30);
    let b_jpg = jpeg(300, 200);
    let shard = tar_of(&[
        ("000001.png", &a_png),
        ("000001.txt", "a red square".as_bytes()),
        ("000001.json", br#"{"source": "test"}"#),
        ("000002.jpg", &b_jpg),
        ("000002.txt", b"a wide picture  \n"),
        ("000003.png", b"\x89PNG\r\n\x1a\nthis is not really a png"),
        ("000003.txt", b"corrupt image"),
        ("000004.png", &a_png),
        ("000004.txt", b"  \n"),
        ("000005.txt", b"no image at all"),
        ("README", b"ignored"),
    ]);
    let (status, body) = upload(app, team, &alice, "shard-0.tar", &shard, Some("first")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "first");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["sample_count"], 2);
    assert_eq!(body["invalid_count"], 3);
    assert_eq!(body["shard_count"], 1);
    assert!(body["bytes"].as_i64().unwrap() > (a_png.len() + b_jpg.len()) as i64);
    let id = body["id"].as_i64().unwrap();
    let report = body["report"].as_array().unwrap();
    let error_of = |key: &str| {
        report
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("no report entry for {key}: {report:?}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(error_of("000003").starts_with("image:"), "{report:?}");
    assert!(
        error_of("000004").starts_with("caption: empty"),
        "{report:?}"
    );
    assert!(
        error_of("000005").starts_with("image: missing"),
        "{report:?}"
    );

    let base = format!("/api/v1/teams/{team}/datasets/{id}");
    let (status, got) = app.get(&base, &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["report"].as_array().unwrap().len(), 3);
    let (_, list) = app
        .get(&format!("/api/v1/teams/{team}/datasets"), &alice)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id);

    let (status, page) = app
        .get(&format!("{base}/samples?page=2&per_page=1"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 2);
    assert_eq!(page["pages"], 2);
    assert_eq!(page["samples"].as_array().unwrap().len(), 1);
    assert_eq!(page["samples"][0]["key"], "000002");
    assert_eq!(page["samples"][0]["caption"], "a wide picture");
    assert_eq!(page["samples"][0]["width"], 300);
    let (_, page) = app.get(&format!("{base}/samples"), &alice).await;
    assert_eq!(page["samples"][0]["key"], "000001");
    assert_eq!(page["samples"][0]["image_ext"], "png");

    let (status, bytes) = get_bytes(app, &format!("{base}/samples/0/image"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, a_png);
    let (status, thumb) = get_bytes(app, &format!("{base}/samples/1/thumbnail"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    // Made once, then served from the object store.
    let cached: Vec<PathBuf> = files_under(app, "objects/datasets")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/thumbnails/"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(std::fs::read(&cached[0]).unwrap(), thumb);
    let (_, again) = get_bytes(app, &format!("{base}/samples/1/thumbnail"), &alice).await;
    assert_eq!(again, thumb);
    let thumb = image::load_from_memory_with_format(&thumb, image::ImageFormat::Png).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (128, 85));
    let (status, _) = app
        .get(&format!("{base}/samples/2/thumbnail"), &alice)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Export: one WebDataset tar holding the valid samples, normalised.
    let (status, exported) = get_bytes(app, &format!("{base}/export"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let mut archive = tar::Archive::new(Cursor::new(exported));
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        members.push((name, data));
    }
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "000001.png",
            "000001.txt",
            "000001.json",
            "000002.jpg",
            "000002.txt"
        ]
    );
    assert_eq!(members[0].1, a_png);
    assert_eq!(members[1].1, b"a red square");
    assert_eq!(members[3].1, b_jpg);

    // Round trip: the export uploads again as the same samples.
    let (status, again) = upload(
        app,
        team,
        &alice,
        "export.tar",
        &tar_of(
            &members
                .iter()
                .map(|(n, d)| (n.as_str(), d.as_slice()))
                .collect::<Vec<_>>(),
        ),
        Some("again"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["sample_count"], 2);
    assert_eq!(again["invalid_count"], 0);

    // The same name again is a conflict.
    let (status, body) = upload(app, team, &alice, "x.tar", &shard, Some("first")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("name:"));

    // An archive without one valid sample is refused, and says why.
    let bad = tar_of(&[("k.png", b"nope"), ("k.txt", b"caption")]);
    let (status, body) = upload(app, team, &alice, "bad.tar", &bad, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"].as_str().unwrap().contains("k.png"), "{body}");
}

async fn imagefolder_zip_and_tar_upload(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "team-a", "alice@example.org", "member")
        .await;
    let one = png(10, 10);
    let two = jpeg(16, 8);
    let metadata = concat!(
        r#"{"file_name": "one.png", "text": "first image"}"#,
        "\n",
        r#"{"file_name": "pics/two.jpg", "text": "second image"}"#,
        "\n\n",
        r#"{"file_name": "missing.png", "text": "nowhere"}"#,
        "\n",
        r#"{"file_name": "one.png.jpg", "text": ""}"#,
        "\n"
    );
    let members: [(&str, &[u8]); 5] = [
        ("train/metadata.jsonl", metadata.as_bytes()),
        ("train/one.png", &one),
        ("train/pics/two.jpg", &two),
        ("train/one.png.jpg", &one),
        ("train/unlisted.png", &one),
    ];
    let (status, body) = upload(app, team, &alice, "folder.zip", &zip_of(&members), None).await;
    // `one.png.jpg` has key `train/one`, like `one.png`: a duplicate key.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("train/metadata.jsonl line 5") && error.contains("duplicate key"),
        "{error}"
    );

    let metadata = metadata.replace("one.png.jpg", "three.jpg");
    let members: [(&str, &[u8]); 5] = [
        ("train/metadata.jsonl", metadata.as_bytes()),
        ("train/one.png", &one),
        ("train/pics/two.jpg", &two),
        ("train/three.jpg", &two),
        ("train/unlisted.png", &one),
    ];
    let (status, body) = upload(app, team, &alice, "folder.zip", &zip_of(&members), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "folder");
    assert_eq!(body["sample_count"], 2);
    assert_eq!(body["invalid_count"], 2);
    let report = body["report"].as_array().unwrap();
    assert!(
        report.iter().any(|e| e["member"]
            .as_str()
            .unwrap()
            .contains("line 4 (missing.png)")),
        "{report:?}"
    );
    assert!(
        report
            .iter()
            .any(|e| e["key"] == "train/three" && e["error"].as_str().unwrap().contains("empty")),
        "{report:?}"
    );
    let id = body["id"].as_i64().unwrap();
    let (_, page) = app
        .get(
            &format!("/api/v1/teams/{team}/datasets/{id}/samples"),
            &alice,
        )
        .await;
    assert_eq!(page["samples"][0]["key"], "train/one");
    assert_eq!(page["samples"][1]["key"], "train/pics/two");
    assert_eq!(page["samples"][1]["caption"], "second image");

    // The same layout as a tar.
    let (status, body) = upload(app, team, &alice, "folder.tar", &tar_of(&members), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = upload(
        app,
        team,
        &alice,
        "folder.tar",
        &tar_of(&members),
        Some("as tar"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sample_count"], 2);
}

async fn hostile_archives_rejected_naming_the_member(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "team-a", "alice@example.org", "member")
        .await;
    let one = png(4, 4);
    let mut zip_symlink = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip_symlink
        .add_symlink(
            "link.png",
            "/etc/passwd",
            zip::write::FileOptions::default(),
        )
        .unwrap();
    let zip_symlink = zip_symlink.finish().unwrap().into_inner();
    use tar::EntryType::{Link, Regular, Symlink};
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "traversal.tar",
            hostile_tar("../../etc/evil.txt", Regular, None),
            "../../etc/evil.txt",
            "path traversal",
        ),
        (
            "absolute.tar",
            hostile_tar("/etc/evil.txt", Regular, None),
            "/etc/evil.txt",
            "absolute",
        ),
        (
            "symlink.tar",
            hostile_tar("link.png", Symlink, Some("ok.png")),
            "link.png",
            "symbolic link",
        ),
        (
            "hardlink.tar",
            hostile_tar("hard.png", Link, Some("ok.png")),
            "hard.png",
            "hard link",
        ),
        (
            "dupname.tar",
            tar_of(&[("a.png", &one), ("a.txt", b"x"), ("a.png", &one)]),
            "a.png",
            "duplicate key",
        ),
        (
            "dupkey.tar",
            tar_of(&[("a.png", &one), ("a.txt", b"x"), ("a.jpg", &one)]),
            "a.jpg",
            "duplicate key `a`",
        ),
        (
            "traversal.zip",
            zip_of(&[("ok.png", &one), ("x/../../evil.txt", b"x")]),
            "x/../../evil.txt",
            "path traversal",
        ),
        (
            "absolute.zip",
            zip_of(&[("/abs.png", &one)]),
            "/abs.png",
            "absolute",
        ),
        ("symlink.zip", zip_symlink, "link.png", "symbolic link"),
        (
            "metadata.zip",
            zip_of(&[(
                "metadata.jsonl",
                br#"{"file_name": "../secret.png", "text": "x"}"#,
            )]),
            "metadata.jsonl: line 1",
            "path traversal",
        ),
        (
            "garbage.tar",
            b"this is neither a tar nor a zip archive, just some text that goes on".repeat(20),
            "",
            "not a readable tar or zip",
        ),
    ];
    for (file_name, bytes, member, reason) in cases {
        let (status, body) = upload(app, team, &alice, file_name, &bytes, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{file_name}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("file: {file_name}: {member}")) && error.contains(reason),
            "{file_name}: {error}"
        );
    }
    nothing_visible(app, team, &alice).await;
}

async fn quota_malformed_and_truncated_uploads_leave_nothing(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, alice) = app
        .team_with_member(&admin, "team-a", "alice@example.org", "member")
        .await;
    let big = noisy_png(256, 256);
    let shard = tar_of(&[("a.png", &big), ("a.txt", b"big")]);

    // Over the quota: 413, with the numbers.
    let row = vila2_web::entities::team::Entity::find_by_id(team as i32)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.storage_quota_bytes,
        vila2_migrations::DEFAULT_TEAM_QUOTA_BYTES
    );
    let mut row: vila2_web::entities::team::ActiveModel = row.into();
    row.storage_quota_bytes = Set(4096);
    row.update(&app.state.db).await.unwrap();
    let (status, body) = upload(app, team, &alice, "big.tar", &shard, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("file:") && error.contains("4096") && error.contains("quota"),
        "{error}"
    );
    nothing_visible(app, team, &alice).await;

    // A small zip whose samples grow past the quota once decompressed: refused while
    // normalising, before anything is stored.
    let huge_caption = "a".repeat(1 << 20);
    let small = png(4, 4);
    let bomb = zip_of(&[("a.png", &small), ("a.txt", huge_caption.as_bytes())]);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let (status, body) = upload(app, team, &alice, "bomb.zip", &bomb, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("normalised"),
        "{body}"
    );
    nothing_visible(app, team, &alice).await;

    // Malformed: not multipart, a broken multipart body, no file field.
    let uri = format!("/api/v1/teams/{team}/datasets");
    let (status, _) = app
        .json(
            axum::http::Method::POST,
            &uri,
            Some(&alice),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let garbage = b"--nope\r\nthis is not the boundary\r\n".to_vec();
    let (status, _, body) = app.send(multipart_request(&uri, &alice, garbage)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let only_name = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
    );
    let (status, _, body) = app
        .send(multipart_request(&uri, &alice, only_name.into_bytes()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("\"file\""));

    // Truncated mid-file: 400 and nothing half-written anywhere.
    let mut row: vila2_web::entities::team::ActiveModel =
        vila2_web::entities::team::Entity::find_by_id(team as i32)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    row.storage_quota_bytes = Set(1 << 30);
    row.update(&app.state.db).await.unwrap();
    let full = form("big.tar", &shard, Some("cut"), None);
    let cut = full[..full.len() / 2].to_vec();
    let (status, _, body) = app.send(multipart_request(&uri, &alice, cut)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("truncated"),
        "{body}"
    );
    // A zip whose member data is corrupt: the member is named, and it is not a server error.
    let mut corrupt = zip_of(&[("a.png", &big), ("a.txt", b"caption")]);
    corrupt[100..400].fill(0x55);
    let (status, body) = upload(app, team, &alice, "corrupt.zip", &corrupt, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("a.png"), "{body}");
    // A tar cut short inside a member, in a well-formed multipart body.
    let (status, body) = upload(app, team, &alice, "cut.tar", &shard[..700], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    nothing_visible(app, team, &alice).await;

    // The whole body then goes through.
    let (status, _, body) = app.send(multipart_request(&uri, &alice, full)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(files_under(app, "tmp"), Vec::<PathBuf>::new());
    assert_eq!(files_under(app, "objects/datasets").len(), 1);
}

async fn datasets_of_another_team_are_404(app: &TestApp) {
    let (_, (team_a, alice), (team_b, bob)) = app.two_teams("member").await;
    let shard = tar_of(&[("a.png", &png(8, 8)), ("a.txt", b"secret caption")]);
    let (status, body) = upload(app, team_a, &alice, "a.tar", &shard, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();

    for team in [team_a, team_b, 99999] {
        for uri in [
            format!("/api/v1/teams/{team}/datasets/{id}"),
            format!("/api/v1/teams/{team}/datasets/{id}/samples"),
            format!("/api/v1/teams/{team}/datasets/{id}/samples/0/image"),
            format!("/api/v1/teams/{team}/datasets/{id}/samples/0/thumbnail"),
            format!("/api/v1/teams/{team}/datasets/{id}/export"),
            format!("/teams/{team}/datasets/{id}"),
        ] {
            let (status, body) = get_bytes(app, &uri, &bob).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            let body = String::from_utf8_lossy(&body);
            assert!(!body.contains("secret"), "{uri}: {body}");
        }
    }
    let (status, _) = get_bytes(app, &format!("/api/v1/teams/{team_a}/datasets"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = upload(app, team_a, &bob, "a.tar", &shard, Some("intruder")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The page form too, with a valid CSRF token.
    let csrf = "0123456789abcdef0123456789abcdef";
    let req = Request::post(format!("/teams/{team_a}/datasets"))
        .header(COOKIE, format!("vila2_session={bob}; vila2_csrf={csrf}"))
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(form(
            "a.tar",
            &shard,
            Some("intruder"),
            Some(csrf),
        )))
        .unwrap();
    assert_eq!(app.send(req).await.0, StatusCode::NOT_FOUND);
    let (status, list) = app
        .get(&format!("/api/v1/teams/{team_b}/datasets"), &bob)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, Value::Array(vec![]));
    // Alice still sees hers.
    let (status, _) = app
        .get(&format!("/api/v1/teams/{team_a}/datasets/{id}"), &alice)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn dataset_page_and_form_upload(app: &TestApp) {
    let admin = app.login(ADMIN.0, ADMIN.1).await;
    let (team, carol) = app
        .team_with_member(&admin, "gamma", "carol@example.org", "owner")
        .await;
    let csrf = "0123456789abcdef0123456789abcdef";
    let cookies = format!("vila2_session={carol}; vila2_csrf={csrf}");
    let shard = tar_of(&[
        ("a.png", &png(8, 8)),
        ("a.txt", b"a <b>tiny</b> image"),
        ("b.png", &png(8, 8)),
        ("b.txt", b""),
    ]);
    let post = |csrf_field: Option<&str>| {
        Request::post(format!("/teams/{team}/datasets"))
            .header(COOKIE, &cookies)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(form(
                "page.tar",
                &shard,
                Some("from the page"),
                csrf_field,
            )))
            .unwrap()
    };
    let (status, _, body) = app.send(post(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) = app
        .send(post(Some("ffffffffffffffffffffffffffffffff")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    nothing_visible(app, team, &carol).await;

    let (status, headers, body) = app.send(post(Some(csrf))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!("/teams/{team}/datasets/")),
        "{location}"
    );

    let (status, _, page) = app.page(&location, &cookies).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("from the page"), "{page}");
    assert!(
        page.contains("a &#60;b&#62;tiny&#60;/b&#62; image")
            || page.contains("a &lt;b&gt;tiny&lt;/b&gt; image"),
        "{page}"
    );
    assert!(page.contains("/samples/0/thumbnail"), "{page}");
    assert!(page.contains("caption: empty"), "{page}");
    assert!(page.contains("/export"), "{page}");

    let (status, _, dashboard) = app.page("/", &cookies).await;
    assert_eq!(status, StatusCode::OK);
    let dashboard = dashboard.as_str().unwrap();
    assert!(
        dashboard.contains("from the page") && dashboard.contains(&location),
        "{dashboard}"
    );
    assert!(
        dashboard.contains("enctype=\"multipart/form-data\""),
        "{dashboard}"
    );
}
