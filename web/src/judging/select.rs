//! Which samples are judged, and how they are shown: deterministic given the run id.
//!
//! For each pair of sources, every sample with two different non-empty captions is a
//! candidate; the [`ITEMS_PER_PAIR`] candidates with the smallest hash of (run id, pair, key)
//! are taken (a seeded random sample that streams over any number of samples). Within a pair,
//! half the items show source A on the left and half on the right, assigned at random, so
//! position bias cancels. All items are then served in one seeded random order (so item ids
//! say nothing about the pair).

use std::collections::BinaryHeap;

use super::folder::Sample;
use super::source::Source;

/// Items sampled per pair at most (VILA²'s study judged 200 images over its pairs).
pub const ITEMS_PER_PAIR: usize = 100;

/// One item to store, in serving order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The pair `(a, b)`, `a` the earlier source.
    pub pair: (Source, Source),
    pub key: String,
    pub shard: String,
    pub left: (Source, String),
    pub right: (Source, String),
}

/// The sampled items of a run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Every pair with the number of items sampled for it (possibly 0).
    pub pairs: Vec<((Source, Source), usize)>,
    /// All items, in the order they are served.
    pub items: Vec<NewItem>,
}

/// A candidate kept in a pair's bounded heap (largest hash on top, evicted first).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Kept {
    hash: u64,
    key: String,
    shard: String,
    a: String,
    b: String,
}

/// Streams samples in and keeps each pair's sample.
pub struct Selector {
    seed: u64,
    per_pair: usize,
    pairs: Vec<((Source, Source), BinaryHeap<Kept>)>,
}

impl Selector {
    /// A selector for run `run_id` whose last round is `last_round`.
    pub fn new(run_id: i32, last_round: u32, per_pair: usize) -> Self {
        Selector {
            seed: run_id as u64,
            per_pair,
            pairs: Source::pairs(last_round)
                .into_iter()
                .map(|p| (p, BinaryHeap::new()))
                .collect(),
        }
    }

    /// Offers one sample to every pair it can be judged in.
    pub fn offer(&mut self, sample: &Sample) {
        for ((a, b), heap) in &mut self.pairs {
            let (Some(ca), Some(cb)) = (sample.caption(*a), sample.caption(*b)) else {
                continue;
            };
            if ca.trim() == cb.trim() {
                continue;
            }
            let hash = hash(
                self.seed,
                &[b"pick", pair_name(*a, *b).as_bytes(), sample.key.as_bytes()],
            );
            if heap.len() == self.per_pair && heap.peek().is_some_and(|top| top.hash <= hash) {
                continue;
            }
            heap.push(Kept {
                hash,
                key: sample.key.clone(),
                shard: sample.shard.clone(),
                a: ca.to_string(),
                b: cb.to_string(),
            });
            if heap.len() > self.per_pair {
                heap.pop();
            }
        }
    }

    /// The selection: sides balanced per pair, items in a seeded order.
    pub fn finish(self) -> Selection {
        let mut selection = Selection::default();
        let mut ordered = Vec::new();
        for ((a, b), heap) in self.pairs {
            let name = pair_name(a, b);
            let kept = heap.into_sorted_vec();
            selection.pairs.push(((a, b), kept.len()));
            let flip = hash(self.seed, &[b"flip", name.as_bytes()]) & 1 == 1;
            for (i, k) in kept.into_iter().enumerate() {
                let a_left = (i % 2 == 0) != flip;
                let (left, right) = if a_left {
                    ((a, k.a), (b, k.b))
                } else {
                    ((b, k.b), (a, k.a))
                };
                let order = hash(self.seed, &[b"order", name.as_bytes(), k.key.as_bytes()]);
                ordered.push((
                    order,
                    NewItem {
                        pair: (a, b),
                        key: k.key,
                        shard: k.shard,
                        left,
                        right,
                    },
                ));
            }
        }
        ordered.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.key.cmp(&y.1.key)));
        selection.items = ordered.into_iter().map(|(_, item)| item).collect();
        selection
    }
}

fn pair_name(a: Source, b: Source) -> String {
    format!("{a}|{b}")
}

/// A stable 64-bit hash (FNV-1a over the parts, finished with SplitMix64's mixer): the same
/// on every platform and version, unlike `std`'s hashers.
fn hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for part in parts {
        for &byte in *part {
            h ^= byte as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &str, captions: &[(Source, &str)]) -> Sample {
        Sample {
            key: key.into(),
            shard: "round-2/data/shard-000000.tar".into(),
            captions: captions.iter().map(|(s, c)| (*s, c.to_string())).collect(),
        }
    }

    fn select(run: i32, per_pair: usize, n: usize) -> Selection {
        let mut sel = Selector::new(run, 2, per_pair);
        for i in 0..n {
            sel.offer(&sample(
                &format!("{i:04}"),
                &[
                    (Source::Original, "a cat"),
                    (Source::Round(1), &format!("a grey cat {i}")),
                    // Every third sample's round 2 repeats round 1: not judged in that pair.
                    (
                        Source::Round(2),
                        &if i % 3 == 0 {
                            format!("a grey cat {i}")
                        } else {
                            format!("a grey cat on a mat {i}")
                        },
                    ),
                ],
            ));
        }
        sel.finish()
    }

    #[test]
    fn deterministic_balanced_and_capped() {
        let one = select(7, 10, 40);
        assert_eq!(
            one.items,
            select(7, 10, 40).items,
            "same run id, same items"
        );
        assert_ne!(
            one.items,
            select(8, 10, 40).items,
            "another run, another draw"
        );
        assert_eq!(
            one.pairs,
            vec![
                ((Source::Original, Source::Round(1)), 10),
                ((Source::Original, Source::Round(2)), 10),
                ((Source::Round(1), Source::Round(2)), 10),
            ]
        );
        for (pair, _) in &one.pairs {
            let items: Vec<&NewItem> = one.items.iter().filter(|i| i.pair == *pair).collect();
            let a_left = items.iter().filter(|i| i.left.0 == pair.0).count();
            assert_eq!(a_left, 5, "{pair:?}: half the items show A on the left");
            for i in &items {
                assert_ne!(i.left.1, i.right.1);
                assert!(
                    [i.left.0, i.right.0] == [pair.0, pair.1]
                        || [i.right.0, i.left.0] == [pair.0, pair.1]
                );
            }
        }
        // Items of different pairs are interleaved in the serving order.
        let firsts: Vec<_> = one.items.iter().take(10).map(|i| i.pair).collect();
        assert!(firsts.iter().any(|p| *p != firsts[0]), "{firsts:?}");
    }

    #[test]
    fn identical_or_missing_captions_are_not_judged() {
        let sel = select(1, 100, 9);
        let count = |pair| sel.pairs.iter().find(|(p, _)| *p == pair).unwrap().1;
        assert_eq!(count((Source::Original, Source::Round(1))), 9);
        assert_eq!(count((Source::Round(1), Source::Round(2))), 6);
        let mut sel = Selector::new(1, 1, 10);
        sel.offer(&sample(
            "x",
            &[(Source::Original, "a cat"), (Source::Round(1), "  ")],
        ));
        sel.offer(&sample("y", &[(Source::Original, "a cat")]));
        assert!(sel.finish().items.is_empty());
    }

    #[test]
    fn a_sample_kept_does_not_depend_on_the_stream_order() {
        let mut forward = Selector::new(3, 1, 5);
        let mut backward = Selector::new(3, 1, 5);
        let samples: Vec<Sample> = (0..30)
            .map(|i| {
                sample(
                    &format!("k{i}"),
                    &[(Source::Original, "x"), (Source::Round(1), "y")],
                )
            })
            .collect();
        samples.iter().for_each(|s| forward.offer(s));
        samples.iter().rev().for_each(|s| backward.offer(s));
        assert_eq!(forward.finish().items, backward.finish().items);
    }
}
