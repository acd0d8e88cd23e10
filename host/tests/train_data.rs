//! The trainer's WebDataset reader: empty shard sets, corrupt and incomplete samples.

mod common;

use vila2::train::TrainError;
use vila2::train::data::{ShardReader, count_samples};

#[test]
fn an_empty_shard_set_is_an_error_naming_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a shard").unwrap();
    let err = ShardReader::open(dir.path()).unwrap_err();
    assert!(matches!(err, TrainError::NoShards(_)), "{err}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_images_and_missing_parts_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |k: &str, seed| {
        vec![
            (format!("{k}.png"), common::png_bytes(20, 20, seed)),
            (format!("{k}.txt"), b"a caption".to_vec()),
        ]
    };
    let mut members = ok("a", 1);
    members.push(("b.jpg".into(), b"not a jpeg at all".to_vec()));
    members.push(("b.txt".into(), b"caption of a broken image".to_vec()));
    members.push(("c.png".into(), common::png_bytes(20, 20, 3)));
    members.push(("d.txt".into(), b"caption without image".to_vec()));
    members.push(("e.png".into(), common::png_bytes(20, 20, 5)));
    members.push(("e.txt".into(), b"   ".to_vec()));
    members.extend(ok("f", 6));
    common::write_shard(&dir.path().join("00000.tar"), &members);
    assert_eq!(
        count_samples(dir.path()).unwrap(),
        3,
        "b counts: its image is not decoded"
    );

    let mut r = ShardReader::open(dir.path()).unwrap();
    let first = r.next_sample().unwrap();
    assert_eq!(first.key, "00000.tar:a");
    assert_eq!(first.caption, "a caption");
    assert_eq!((first.image.width(), first.image.height()), (20, 20));
    let second = r.next_sample().unwrap();
    assert_eq!(second.key, "00000.tar:f");
    assert_eq!(r.stats.corrupt_images, 1);
    assert_eq!(r.stats.missing_captions, 2);
    assert_eq!(r.stats.missing_images, 1);
    assert_eq!(r.stats.samples, 2);
    assert_eq!(r.epoch, 0);
    // The next sample wraps to the second epoch.
    assert_eq!(r.next_sample().unwrap().key, "00000.tar:a");
    assert_eq!(r.epoch, 1);
}

#[test]
fn shards_without_any_usable_sample_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    common::write_shard(
        &dir.path().join("x.tar"),
        &[
            ("a.png".into(), b"garbage".to_vec()),
            ("a.txt".into(), b"cap".to_vec()),
        ],
    );
    let mut r = ShardReader::open(dir.path()).unwrap();
    let err = r.next_sample().unwrap_err();
    assert!(
        matches!(err, TrainError::NoSamples { skipped: 1, .. }),
        "{err}"
    );
}
