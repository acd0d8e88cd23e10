//! The checks, as one pure function over a caption: [`judge`]. One pass over the characters
//! (counts, symbol runs, word and sentence hashes) plus cheap passes over the hashes (phrases,
//! n-grams, repeated sentences);
//! scratch buffers are reused per thread, so judging does not allocate once warm.

use std::cell::RefCell;

use crate::Config;

/// Why a caption lost score. Names are stable kebab-case strings ([`Reason::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing but whitespace.
    Empty,
    /// Fewer than `min_words` words.
    TooShort,
    /// More than `max_words` words.
    TooLong,
    /// A sentence said again, or too many repeated word n-grams (a generation loop).
    Repetition,
    /// No terminal punctuation: cut off mid-sentence.
    Truncated,
    /// A refusal or assistant boilerplate ("I'm sorry", "As an AI", "Sure! Here is").
    Boilerplate,
    /// Itemised as a list, which VILA²'s long-v3 prompt asks the model not to do.
    ListForm,
    /// Speculative wording ("possibly", "might be", "it seems"), which long-v3 asks to avoid.
    Speculative,
    /// Not text: few letters, replacement or control characters, long symbol runs or tokens.
    Garbage,
    /// The model's mean token log-probability is below `min_mean_logprob`.
    LowLogprob,
}

impl Reason {
    /// Every reason, in the order verdicts list them.
    pub const ALL: [Reason; 10] = [
        Reason::Empty,
        Reason::TooShort,
        Reason::TooLong,
        Reason::Repetition,
        Reason::Truncated,
        Reason::Boilerplate,
        Reason::ListForm,
        Reason::Speculative,
        Reason::Garbage,
        Reason::LowLogprob,
    ];

    /// The reason as it appears in a verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooShort => "too-short",
            Reason::TooLong => "too-long",
            Reason::Repetition => "repetition",
            Reason::Truncated => "truncated",
            Reason::Boilerplate => "boilerplate",
            Reason::ListForm => "list-form",
            Reason::Speculative => "speculative",
            Reason::Garbage => "garbage",
            Reason::LowLogprob => "low-logprob",
        }
    }

    /// Score lost for this reason (speculative: per expression over the allowance, up to 0.6).
    pub fn penalty(self) -> f32 {
        match self {
            Reason::Empty | Reason::Boilerplate | Reason::Garbage => 1.0,
            Reason::TooShort | Reason::Repetition => 0.6,
            Reason::TooLong | Reason::ListForm => 0.5,
            Reason::Truncated => 0.45,
            Reason::LowLogprob => 0.5,
            Reason::Speculative => 0.15,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of [`Reason`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons(u16);

impl Reasons {
    pub fn insert(&mut self, reason: Reason) {
        self.0 |= reason.bit();
    }

    pub fn contains(self, reason: Reason) -> bool {
        self.0 & reason.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons present, in [`Reason::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// The outcome of [`judge`]: allocation-free; [`Assessment::to_verdict`] makes the WIT record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub keep: bool,
    /// 1 minus the penalties of the reasons, clamped to [0, 1].
    pub score: f32,
    pub reasons: Reasons,
    /// Words counted (tokens with at least one letter or digit).
    pub words: usize,
    /// Speculative expressions found.
    pub speculative: usize,
}

impl Assessment {
    /// The verdict the filter returns to the host.
    pub fn to_verdict(&self) -> vila2_guest::Verdict {
        vila2_guest::Verdict {
            keep: self.keep,
            score: self.score,
            reasons: self
                .reasons
                .iter()
                .map(|r| r.as_str().to_string())
                .collect(),
        }
    }
}

/// Judges one caption under `config`. Same as [`judge_candidate`] without a log-probability.
pub fn judge(config: &Config, caption: &str) -> Assessment {
    judge_candidate(config, caption, None)
}

/// Judges one caption, and its mean token log-probability when the model reported one.
pub fn judge_candidate(config: &Config, caption: &str, mean_logprob: Option<f32>) -> Assessment {
    SCRATCH.with(|s| {
        let scratch = &mut *s.borrow_mut();
        assess(config, caption, mean_logprob, scratch)
    })
}

thread_local! {
    /// Hashes of the caption being judged.
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { words: Vec::new(), grams: Vec::new(), sentences: Vec::new() })
    };
}

/// Buffers reused from caption to caption.
struct Scratch {
    /// One hash per word.
    words: Vec<u64>,
    /// The n-gram set of [`repeated_ratio`].
    grams: Vec<u64>,
    /// One hash per sentence: its words' hashes, so case, spacing and punctuation are ignored.
    sentences: Vec<u64>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

const fn fnv_byte(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(FNV_PRIME)
}

/// Hash of a word as the tokenizer sees it: lowercase letters and digits only.
const fn word(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            h = fnv_byte(h, b[i].to_ascii_lowercase());
        }
        i += 1;
    }
    h
}

macro_rules! phrases {
    ($([$($w:literal)+]),+ $(,)?) => { &[$(&[$(word($w)),+]),+] };
}

/// Refusals and assistant chatter (apostrophes are dropped by the tokenizer: "i'm" is "im").
const BOILERPLATE: &[&[u64]] = phrases![
    ["im" "sorry"],
    ["i" "am" "sorry"],
    ["as" "an" "ai"],
    ["language" "model"],
    ["i" "cannot"],
    ["i" "cant"],
    ["i" "am" "unable"],
    ["im" "unable"],
    ["im" "not" "able" "to"],
    ["sure" "here" "is"],
    ["sure" "heres"],
    ["certainly" "here" "is"],
    ["certainly" "heres"],
    ["here" "is" "a" "description"],
    ["heres" "a" "description"],
    ["i" "hope" "this" "helps"],
    ["let" "me" "know" "if"],
];

/// Hedges that long-v3 asks the model to avoid.
const SPECULATIVE: &[&[u64]] = phrases![
    ["possibly"],
    ["perhaps"],
    ["probably"],
    ["likely"],
    ["maybe"],
    ["presumably"],
    ["seemingly"],
    ["apparently"],
    ["might" "be"],
    ["may" "be"],
    ["could" "be"],
    ["it" "seems"],
    ["seems" "to"],
    ["seem" "to"],
    ["appears" "to"],
    ["appear" "to"],
    ["it" "appears"],
];

fn assess(
    config: &Config,
    text: &str,
    mean_logprob: Option<f32>,
    scratch: &mut Scratch,
) -> Assessment {
    let Scratch {
        words: hashes,
        grams,
        sentences,
    } = scratch;
    let mut reasons = Reasons::default();
    let text = text.trim();
    if text.is_empty() {
        reasons.insert(Reason::Empty);
        return Assessment {
            keep: false,
            score: 0.0,
            reasons,
            words: 0,
            speculative: 0,
        };
    }

    // One pass over the characters: counts, symbol runs, token lengths, word and sentence
    // hashes. A sentence ends at a token ending in . ! ? (closing quotes and brackets after it
    // allowed), so "3.5" and "e.g.," do not end one.
    hashes.clear();
    sentences.clear();
    let (mut sentence, mut sentence_words, mut ends) = (FNV_OFFSET, 0usize, false);
    let (mut non_space, mut alpha, mut bad, mut symbol_run, mut max_symbol_run) =
        (0usize, 0, 0, 0, 0);
    let (mut token_chars, mut max_token_chars) = (0usize, 0);
    let (mut h, mut in_word) = (FNV_OFFSET, false);
    for ch in text.chars() {
        if ch.is_whitespace() {
            if in_word {
                hashes.push(h);
                (sentence, sentence_words) = (mix(sentence, h), sentence_words + 1);
            }
            if ends && sentence_words > 0 {
                sentences.push(sentence);
                (sentence, sentence_words) = (FNV_OFFSET, 0);
            }
            (h, in_word, symbol_run, token_chars, ends) = (FNV_OFFSET, false, 0, 0, false);
            continue;
        }
        if is_terminal(ch) {
            ends = true;
        } else if !is_closing(ch) {
            ends = false;
        }
        non_space += 1;
        token_chars += 1;
        max_token_chars = max_token_chars.max(token_chars);
        if ch.is_ascii_alphanumeric() {
            alpha += ch.is_ascii_alphabetic() as usize;
            symbol_run = 0;
            in_word = true;
            h = fnv_byte(h, ch.to_ascii_lowercase() as u8);
        } else if ch.is_alphanumeric() {
            alpha += ch.is_alphabetic() as usize;
            symbol_run = 0;
            in_word = true;
            for l in ch.to_lowercase() {
                let mut buf = [0u8; 4];
                for &b in l.encode_utf8(&mut buf).as_bytes() {
                    h = fnv_byte(h, b);
                }
            }
        } else {
            bad += (ch == '\u{FFFD}' || ch.is_control()) as usize;
            // Apostrophes join words ("it's"); other symbols count towards a run.
            if !matches!(ch, '\'' | '\u{2019}') {
                symbol_run += 1;
                max_symbol_run = max_symbol_run.max(symbol_run);
            }
        }
    }
    if in_word {
        hashes.push(h);
        (sentence, sentence_words) = (mix(sentence, h), sentence_words + 1);
    }
    if sentence_words > 0 {
        sentences.push(sentence);
    }
    let words = hashes.len();

    if words < config.min_words {
        reasons.insert(Reason::TooShort);
    }
    if words > config.max_words {
        reasons.insert(Reason::TooLong);
    }
    if bad > 0
        || (alpha as f32) < config.min_alpha_ratio * non_space as f32
        || max_symbol_run > config.max_symbol_run
        || max_token_chars > config.max_token_chars
    {
        reasons.insert(Reason::Garbage);
    }
    if config.require_terminal_punctuation && !ends_sentence(text) {
        reasons.insert(Reason::Truncated);
    }
    if list_items(text) > config.max_list_items {
        reasons.insert(Reason::ListForm);
    }
    if count_phrases(hashes, BOILERPLATE, BOILERPLATE_MASK) > 0 {
        reasons.insert(Reason::Boilerplate);
    }
    let speculative = count_phrases(hashes, SPECULATIVE, SPECULATIVE_MASK);
    if speculative > config.max_speculative {
        reasons.insert(Reason::Speculative);
    }
    if repeated_sentences(sentences) > config.max_repeated_sentences
        || repeated_ratio(hashes, config.repetition_ngram, grams) > config.max_repeated_ngram_ratio
    {
        reasons.insert(Reason::Repetition);
    }
    if let (Some(min), Some(lp)) = (config.min_mean_logprob, mean_logprob)
        && lp < min
    {
        reasons.insert(Reason::LowLogprob);
    }

    let penalty: f32 = reasons
        .iter()
        .map(|r| match r {
            Reason::Speculative => {
                (r.penalty() * (speculative - config.max_speculative) as f32).min(0.6)
            }
            _ => r.penalty(),
        })
        .sum();
    // Three decimals: 1 - 0.6 reads 0.4, not 0.39999998.
    let score = ((1.0 - penalty).clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
    Assessment {
        keep: score >= config.min_score,
        score,
        reasons,
        words,
        speculative,
    }
}

/// Closing quotes and brackets, which may follow a sentence's full stop.
fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '\u{201D}' | '\u{2019}' | '\u{BB}'
    )
}

/// Whether the caption ends a sentence, looking past closing quotes and brackets.
fn ends_sentence(text: &str) -> bool {
    text.trim_end_matches(is_closing)
        .chars()
        .next_back()
        .is_some_and(is_terminal)
}

/// Punctuation that ends a sentence.
fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '\u{2026}' | '\u{3002}')
}

/// Lines that start like a list item: "- ", "* ", "• ", "1. ", "2) ".
fn list_items(text: &str) -> usize {
    if !text.contains('\n')
        && !text.starts_with(|c: char| matches!(c, '-' | '*' | '\u{2022}' | '0'..='9'))
    {
        return 0;
    }
    text.lines()
        .filter(|line| {
            let t = line.trim_start();
            if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("\u{2022} ") {
                return true;
            }
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0
                && matches!(
                    t.as_bytes().get(digits..digits + 2),
                    Some([b'.' | b')', b' '])
                )
        })
        .count()
}

/// Bit `h % 128` set for the first word hash `h` of every phrase: a quick reject for words
/// that start no phrase.
const fn first_word_mask(phrases: &[&[u64]]) -> u128 {
    let mut mask = 0u128;
    let mut i = 0;
    while i < phrases.len() {
        mask |= 1 << (phrases[i][0] % 128);
        i += 1;
    }
    mask
}

const BOILERPLATE_MASK: u128 = first_word_mask(BOILERPLATE);
const SPECULATIVE_MASK: u128 = first_word_mask(SPECULATIVE);

/// Occurrences of any of `phrases` (whose first words make `mask`) as consecutive words.
fn count_phrases(words: &[u64], phrases: &[&[u64]], mask: u128) -> usize {
    (0..words.len())
        .filter(|&i| {
            let w = words[i];
            mask & (1 << (w % 128)) != 0
                && phrases
                    .iter()
                    .any(|p| p[0] == w && words[i..].starts_with(p))
        })
        .count()
}

/// A hash of a word sequence (a sentence, an n-gram) extended by the next word's hash; order
/// matters.
fn mix(sequence: u64, word: u64) -> u64 {
    (sequence.rotate_left(23) ^ word).wrapping_mul(FNV_PRIME)
}

/// Sentences that repeat an earlier one; sorts `sentences`.
fn repeated_sentences(sentences: &mut [u64]) -> usize {
    sentences.sort_unstable();
    sentences.windows(2).filter(|w| w[0] == w[1]).count()
}

/// Share of word `n`-grams that repeat an earlier one (0 for fewer than four n-grams).
/// Distinct n-grams are counted in an open-addressing set kept in `table`.
fn repeated_ratio(words: &[u64], n: usize, table: &mut Vec<u64>) -> f32 {
    if n == 0 || words.len() < n + 3 {
        return 0.0;
    }
    let total = words.len() - n + 1;
    let slots = (2 * total).next_power_of_two();
    table.clear();
    table.resize(slots, 0);
    let mut repeated = 0usize;
    for w in words.windows(n) {
        // 0 marks an empty slot, so hashes are forced odd.
        let g = w.iter().fold(0u64, |g, &h| mix(g, h)) | 1;
        let mut i = (g >> 7) as usize & (slots - 1);
        loop {
            match table[i] {
                0 => {
                    table[i] = g;
                    break;
                }
                x if x == g => {
                    repeated += 1;
                    break;
                }
                _ => i = (i + 1) & (slots - 1),
            }
        }
    }
    repeated as f32 / total as f32
}
