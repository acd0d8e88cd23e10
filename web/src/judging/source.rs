//! Where a judged caption comes from: the dataset's original caption or a round's recaption.

use std::fmt;
use std::str::FromStr;

/// A caption source, stored as `original` or `round:k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The caption the dataset came with.
    Original,
    /// The recaption written in self-augmentation round k (k ≥ 1).
    Round(u32),
}

impl Source {
    /// For people: `original`, `round 2`.
    pub fn label(self) -> String {
        match self {
            Source::Original => "original".into(),
            Source::Round(k) => format!("round {k}"),
        }
    }

    /// Every pair `(a, b)` with `a` earlier than `b` among the original and rounds `1..=last`:
    /// original vs each round first, then round j vs round k.
    pub fn pairs(last: u32) -> Vec<(Source, Source)> {
        let mut pairs: Vec<(Source, Source)> = (1..=last)
            .map(|k| (Source::Original, Source::Round(k)))
            .collect();
        for j in 1..=last {
            for k in j + 1..=last {
                pairs.push((Source::Round(j), Source::Round(k)));
            }
        }
        pairs
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Original => f.write_str("original"),
            Source::Round(k) => write!(f, "round:{k}"),
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "original" {
            return Ok(Source::Original);
        }
        s.strip_prefix("round:")
            .and_then(|k| k.parse().ok())
            .filter(|&k| k >= 1)
            .map(Source::Round)
            .ok_or_else(|| format!("`{s}` is not a caption source (original or round:K)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_pairs() {
        for s in [Source::Original, Source::Round(1), Source::Round(12)] {
            assert_eq!(s.to_string().parse::<Source>().unwrap(), s);
        }
        assert!("round:0".parse::<Source>().is_err());
        assert!("round 1".parse::<Source>().is_err());
        let names: Vec<String> = Source::pairs(3)
            .into_iter()
            .map(|(a, b)| format!("{a}|{b}"))
            .collect();
        assert_eq!(
            names,
            [
                "original|round:1",
                "original|round:2",
                "original|round:3",
                "round:1|round:2",
                "round:1|round:3",
                "round:2|round:3"
            ]
        );
    }
}
