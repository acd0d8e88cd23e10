//! Length-grouped batching: the samples of several steps are drawn together, sorted by
//! token length and cut into micro-batches, so each micro-batch pads only to the longest of
//! samples of similar length (what LLaVA's `group_by_modality_length` and transformers'
//! `group_by_length` do); the steps are then shuffled, so training does not meet a group's
//! samples from short to long.

use super::data::SplitMix;

/// The sample indices of each step's micro-batches for the `lengths` of the samples drawn
/// for a group of steps (`steps · grad_accum · batch_size` of them): sorted by length
/// (stable, so equal lengths keep their drawn order), cut into micro-batches of
/// `batch_size`, `grad_accum` consecutive ones to a step, and the steps shuffled by a
/// generator seeded with `seed`. Every index appears exactly once; a ragged tail (fewer
/// samples than a full group) makes a last, smaller micro-batch.
pub fn plan(
    lengths: &[usize],
    batch_size: usize,
    grad_accum: usize,
    seed: u64,
) -> Vec<Vec<Vec<usize>>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let micro: Vec<Vec<usize>> = order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let mut steps: Vec<Vec<Vec<usize>>> = micro
        .chunks(grad_accum.max(1))
        .map(<[Vec<usize>]>::to_vec)
        .collect();
    let mut rng = SplitMix(seed);
    for i in (1..steps.len()).rev() {
        steps.swap(i, rng.below(i + 1));
    }
    steps
}

/// The plan of samples taken in drawn order: micro-batches of `batch_size` consecutive
/// samples, `grad_accum` to a step (what training does without length grouping).
pub fn in_order(n: usize, batch_size: usize, grad_accum: usize) -> Vec<Vec<Vec<usize>>> {
    let micro: Vec<Vec<usize>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    micro
        .chunks(grad_accum.max(1))
        .map(<[Vec<usize>]>::to_vec)
        .collect()
}

/// Token slots a plan's right-padded micro-batches hold: each micro-batch's size times its
/// longest sample, summed (the real tokens are `lengths`' sum; the rest is padding).
pub fn slots(lengths: &[usize], plan: &[Vec<Vec<usize>>]) -> usize {
    plan.iter()
        .flatten()
        .map(|mb| mb.len() * mb.iter().map(|&i| lengths[i]).max().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(n: usize, seed: u64) -> Vec<usize> {
        let mut rng = SplitMix(seed);
        (0..n).map(|_| 70 + rng.below(400)).collect()
    }

    #[test]
    fn every_sample_lands_in_exactly_one_micro_batch_of_the_right_shape() {
        let l = lengths(8 * 2 * 4, 3);
        let p = plan(&l, 4, 2, 9);
        assert_eq!(p.len(), 8);
        assert!(
            p.iter()
                .all(|s| s.len() == 2 && s.iter().all(|m| m.len() == 4))
        );
        let mut seen: Vec<usize> = p.iter().flatten().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..l.len()).collect::<Vec<_>>());
    }

    #[test]
    fn grouping_pads_less_than_drawn_order_and_the_steps_are_shuffled() {
        let l = lengths(8 * 16, 5);
        let grouped = plan(&l, 16, 1, 1);
        let plain = in_order(l.len(), 16, 1);
        let real: usize = l.iter().sum();
        let (g, p) = (slots(&l, &grouped), slots(&l, &plain));
        assert!(
            g >= real && g < p,
            "grouped {g} slots, in order {p}, real {real}"
        );
        // Sorted micro-batches, but not handed out from shortest to longest.
        let firsts: Vec<usize> = grouped.iter().map(|s| l[s[0][0]]).collect();
        assert!(firsts.windows(2).any(|w| w[0] > w[1]), "{firsts:?}");
        assert_ne!(plan(&l, 16, 1, 1), plan(&l, 16, 1, 2));
        assert_eq!(plan(&l, 16, 1, 1), grouped);
    }

    #[test]
    fn a_short_group_keeps_every_sample() {
        let l = lengths(21, 7);
        let p = plan(&l, 4, 2, 0);
        let n: usize = p.iter().flatten().map(Vec::len).sum();
        assert_eq!(n, 21);
        assert_eq!(
            in_order(21, 4, 2)
                .iter()
                .flatten()
                .map(Vec::len)
                .sum::<usize>(),
            21
        );
    }
}
