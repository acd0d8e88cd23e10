//! The trainer's WebDataset reader: empty shard sets, corrupt and incomplete samples,
//! malformed shards, and the epoch counter of the shuffled stream.

mod common;

use vila2::train::TrainError;
use vila2::train::data::{ShardReader, count_samples};

fn keys(r: &mut ShardReader, n: usize) -> Vec<String> {
    (0..n).map(|_| r.next_sample().unwrap().key).collect()
}

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
    // f is the last sample of the shard set: the first pass is complete.
    assert_eq!(r.epoch, 1);
    assert_eq!(r.state().in_epoch, 0);
    // The next sample starts the second pass.
    assert_eq!(r.next_sample().unwrap().key, "00000.tar:a");
    assert_eq!(r.epoch, 1);
    assert_eq!(r.state().in_epoch, 1);
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

#[test]
fn the_shuffled_epoch_turns_exactly_at_the_end_of_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    common::caption_shard(&dir.path().join("000000.tar"), 7, 0);
    common::caption_shard(&dir.path().join("000001.tar"), 5, 100);
    let n = 12;
    let mut r = ShardReader::shuffled(dir.path(), 4, 1).unwrap();
    let mut first_pass = Vec::new();
    for i in 1..=n {
        first_pass.push(r.next_sample().unwrap().key);
        let st = r.state();
        let expected = if i < n { (0, i as u64) } else { (1, 0) };
        assert_eq!(
            (st.epoch, st.in_epoch),
            expected,
            "after {i} of {n} samples"
        );
        assert_eq!(st.consumed, i as u64);
    }
    // The pass is a permutation: every sample once, none from the next pass.
    let mut sorted = first_pass.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "{first_pass:?}");
    // A reader resumed at the end of the pass continues exactly as the original does.
    let at_end = r.state();
    let mut resumed = ShardReader::resume(dir.path(), 4, 1, &at_end).unwrap();
    assert_eq!(resumed.state(), at_end);
    let (a, b) = (keys(&mut r, n), keys(&mut resumed, n));
    assert_eq!(a, b);
    assert_eq!(r.state(), resumed.state());
    assert_eq!((r.epoch, r.state().in_epoch), (2, 0));
    let mut second = a.clone();
    second.sort();
    assert_eq!(second, sorted);
    assert_ne!(a, first_pass, "each pass is shuffled anew");
}

#[test]
fn malformed_shards_are_errors_naming_shard_and_member() {
    let dir = tempfile::tempdir().unwrap();
    let png = common::png_bytes(8, 8, 1);
    common::write_shard(
        &dir.path().join("bad.tar"),
        &[
            ("a.png".into(), png.clone()),
            ("b.png".into(), png.clone()),
            ("a.txt".into(), b"caption of a".to_vec()),
        ],
    );
    let err = ShardReader::open(dir.path())
        .unwrap()
        .next_sample()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.tar") && err.contains("a.txt") && err.contains("repeated"),
        "{err}"
    );
    common::write_shard(
        &dir.path().join("bad.tar"),
        &[("a.png".into(), png), ("LICENSE".into(), b"MIT".to_vec())],
    );
    let err = count_samples(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("bad.tar") && err.contains("LICENSE") && err.contains("no extension"),
        "{err}"
    );
}

/// Two shards mixing usable samples with corrupt images and missing parts.
fn mixed_shards(dir: &std::path::Path) {
    for (s, name) in ["00000.tar", "00001.tar"].iter().enumerate() {
        let mut members = Vec::new();
        for i in 0..9u32 {
            let k = format!("s{s}-{i}");
            match i % 4 {
                1 => members.push((format!("{k}.jpg"), b"not a jpeg".to_vec())),
                3 if i == 3 => {}
                _ => members.push((
                    format!("{k}.png"),
                    common::png_bytes(12, 10, i + 10 * s as u32),
                )),
            }
            if i != 6 {
                members.push((format!("{k}.txt"), format!("caption {k}").into_bytes()));
            }
        }
        common::write_shard(&dir.join(name), &members);
    }
}

#[test]
fn the_parallel_loader_yields_the_readers_stream_counts_and_states() {
    use vila2::train::loader::Loader;
    use vila2::vlm::preprocess::ImageProcessor;
    let dir = tempfile::tempdir().unwrap();
    mixed_shards(dir.path());
    let processor = ImageProcessor::load(&common::fixture("clip_llama")).unwrap();
    let n = 25; // into the third pass of 10 usable samples
    let mut r = ShardReader::shuffled(dir.path(), 4, 3).unwrap();
    let want: Vec<_> = (0..n)
        .map(|_| {
            let s = r.next_sample().unwrap();
            (s.key, r.state(), processor.preprocess(&s.image))
        })
        .collect();
    assert!(r.state().stats.skipped() > 0 && r.state().epoch == 2);
    for workers in [1, 4] {
        let reader = ShardReader::shuffled(dir.path(), 4, 3).unwrap();
        let mut loader = Loader::spawn(reader, processor.clone(), 3, workers);
        for (i, (key, state, pixels)) in want.iter().enumerate() {
            let p = loader.next_sample().unwrap();
            assert_eq!(&p.sample.key, key, "{workers} workers, sample {i}");
            assert_eq!(&p.state, state, "{workers} workers, sample {i}");
            assert!(p.pixels.equal(pixels), "{workers} workers, sample {i}");
        }
    }
    // A loader resumed from a saved state continues the stream.
    let at = want[10].1;
    let reader = ShardReader::resume(dir.path(), 4, 3, &at).unwrap();
    let mut loader = Loader::spawn(reader, processor.clone(), 3, 3);
    for (key, state, _) in &want[11..] {
        let p = loader.next_sample().unwrap();
        assert_eq!((&p.sample.key, &p.state), (key, state));
    }
}

#[test]
fn a_loader_over_unusable_shards_fails_like_the_reader() {
    use vila2::train::loader::Loader;
    use vila2::vlm::preprocess::ImageProcessor;
    let dir = tempfile::tempdir().unwrap();
    common::write_shard(
        &dir.path().join("x.tar"),
        &[
            ("a.png".into(), b"garbage".to_vec()),
            ("a.txt".into(), b"cap".to_vec()),
            ("b.png".into(), common::png_bytes(8, 8, 1)),
        ],
    );
    let processor = ImageProcessor::load(&common::fixture("clip_llama")).unwrap();
    let skipped = |e: TrainError| match e {
        TrainError::NoSamples { skipped, .. } => skipped,
        other => panic!("{other}"),
    };
    let want = skipped(
        ShardReader::shuffled(dir.path(), 2, 0)
            .unwrap()
            .next_sample()
            .unwrap_err(),
    );
    assert!(want >= 2);
    let reader = ShardReader::shuffled(dir.path(), 2, 0).unwrap();
    let mut loader = Loader::spawn(reader, processor, 2, 3);
    assert_eq!(skipped(loader.next_sample().unwrap_err()), want);
}
