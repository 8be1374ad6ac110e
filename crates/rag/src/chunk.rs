//! Chunking: pack a document's paragraphs into pieces of text that fit a token budget.
//!
//! A chunk is what gets embedded and later pasted into a prompt, so it has to stay under
//! the budget as the caller counts tokens, keep related text together, and carry some
//! context over from the chunk before it. The rules, in order of preference:
//!
//! 1. Whole paragraphs are packed into a chunk, joined by a blank line (`"\n\n"`), while
//!    the chunk stays within [`ChunkOptions::max_tokens`].
//! 2. A paragraph longer than the budget is split into sentences (ending in `.`, `!` or
//!    `?` followed by whitespace), a sentence longer than the budget into words, and a
//!    word longer than the budget (a long URL, say, under a subword tokenizer) into pieces
//!    of characters. The parts of a split paragraph are joined by single spaces.
//! 3. Every chunk after the first starts with the tail of the one before: the whole
//!    sentences at its end that fit in [`ChunkOptions::overlap_tokens`], or, if not even
//!    the last sentence fits, its last words. The overlap is cut short where it would push
//!    the chunk over the budget.
//!
//! Tokens are counted by the caller's function, always on the exact text of a candidate
//! chunk, so the budget holds for tokenizers where counts do not simply add up. The
//! only way to exceed it is a single character that alone counts as more than
//! `max_tokens`. The output depends only on the input: the same paragraphs, options and
//! counter always give the same chunks.
//!
//! [`content_hash`] fingerprints a file's text so an index can tell when it changed.

use sha2::{Digest, Sha256};

/// How big chunks get and how much of each one is repeated at the start of the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// The most tokens in one chunk. Zero is treated as one.
    pub max_tokens: usize,
    /// The most tokens carried over from the end of one chunk to the start of the next.
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    /// 200 tokens a chunk with 40 of overlap: small enough for several chunks to fit a
    /// small model's context next to the question.
    fn default() -> Self {
        Self { max_tokens: 200, overlap_tokens: 40 }
    }
}

/// One piece of a document, ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The text, never empty: paragraphs joined by `"\n\n"`, parts of a split paragraph by spaces.
    pub text: String,
    /// The 0-based index of this chunk in the document.
    pub position: usize,
    /// The index (into the input slice) of the paragraph the text starts in, overlap included.
    pub first_paragraph: usize,
    /// The number of tokens in `text`, as counted by the caller's function.
    pub tokens: usize,
}

/// Splits `paragraphs` into chunks of at most `options.max_tokens` tokens as measured by
/// `count_tokens`, following the rules in the [module docs](self). Empty and
/// whitespace-only paragraphs are skipped; no paragraphs give no chunks.
pub fn chunk(paragraphs: &[String], options: &ChunkOptions, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let max = options.max_tokens.max(1);
    let mut chunks = Vec::new();
    let mut current: Vec<Piece<'_>> = Vec::new();
    let mut text = String::new();
    for piece in pieces(paragraphs, max, count_tokens) {
        if !current.is_empty() {
            let candidate = format!("{text}{}{}", piece.joint.as_str(), piece.text);
            if count_tokens(&candidate) <= max {
                current.push(piece);
                text = candidate;
                continue;
            }
            let tail = overlap_tail(&current, options.overlap_tokens, count_tokens);
            chunks.push(finish(&current, std::mem::take(&mut text), chunks.len(), count_tokens));
            (current, text) = start_with_overlap(&tail, piece, max, count_tokens);
        } else {
            current.push(piece);
            text = piece.text.to_owned();
        }
    }
    if !current.is_empty() {
        chunks.push(finish(&current, text, chunks.len(), count_tokens));
    }
    chunks
}

/// The lowercase hex SHA-256 of `text`, for telling whether a file's content changed.
pub fn content_hash(text: &str) -> String {
    content_hash_bytes(text.as_bytes())
}

/// The lowercase hex SHA-256 of raw file bytes. Prefer this for binary files such as PDF:
/// decoding them lossily first would map different invalid byte sequences to the same text.
pub fn content_hash_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What goes between a piece and the one before it in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joint {
    /// The piece starts a new paragraph.
    Paragraph,
    /// The piece is a later sentence or word of the same paragraph.
    Space,
    /// The piece continues a word that was too long for one chunk.
    None,
}

impl Joint {
    fn as_str(self) -> &'static str {
        match self {
            Joint::Paragraph => "\n\n",
            Joint::Space => " ",
            Joint::None => "",
        }
    }
}

/// The smallest unit the packer moves around: a paragraph, sentence, word or word fragment.
#[derive(Debug, Clone, Copy)]
struct Piece<'a> {
    text: &'a str,
    joint: Joint,
    paragraph: usize,
}

/// Cuts the paragraphs into pieces that each fit the budget on their own, as coarse as possible.
fn pieces<'a>(paragraphs: &'a [String], max: usize, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    for (paragraph, text) in paragraphs.iter().enumerate() {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        if count_tokens(text) <= max {
            out.push(Piece { text, joint: Joint::Paragraph, paragraph });
            continue;
        }
        let mut joint = Joint::Paragraph;
        for sentence in sentences(text) {
            if count_tokens(sentence) <= max {
                out.push(Piece { text: sentence, joint, paragraph });
                joint = Joint::Space;
                continue;
            }
            for word in sentence.split_whitespace() {
                if count_tokens(word) <= max {
                    out.push(Piece { text: word, joint, paragraph });
                } else {
                    for (index, fragment) in fragments(word, max, count_tokens).into_iter().enumerate() {
                        out.push(Piece {
                            text: fragment,
                            joint: if index == 0 { joint } else { Joint::None },
                            paragraph,
                        });
                    }
                }
                joint = Joint::Space;
            }
        }
    }
    out
}

/// Splits text after `.`, `!` or `?` (with any closing quotes or brackets) followed by
/// whitespace. The sentences are trimmed and never empty.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let mut end = index + c.len_utf8();
        while let Some(&(next_index, next)) = chars.peek() {
            if !matches!(next, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '\u{201d}' | '\u{2019}' | '\u{bb}') {
                break;
            }
            end = next_index + next.len_utf8();
            chars.next();
        }
        if chars.peek().is_some_and(|&(_, next)| next.is_whitespace()) {
            push_trimmed(&mut out, &text[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut out, &text[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, text: &'a str) {
    let text = text.trim();
    if !text.is_empty() {
        out.push(text);
    }
}

/// Cuts a word into the longest runs of characters that fit the budget (at least one
/// character each, so a single character over the budget still makes progress).
fn fragments<'a>(word: &'a str, max: usize, count_tokens: &dyn Fn(&str) -> usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = word;
    while !rest.is_empty() {
        let ends: Vec<usize> = rest.char_indices().map(|(index, c)| index + c.len_utf8()).collect();
        // Binary search for the most characters that fit; one always goes.
        let (mut low, mut high) = (1, ends.len());
        while low < high {
            let middle = (low + high).div_ceil(2);
            if count_tokens(&rest[..ends[middle - 1]]) <= max {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        let (fragment, remainder) = rest.split_at(ends[low - 1]);
        out.push(fragment);
        rest = remainder;
    }
    out
}

/// The end of a chunk to repeat at the start of the next: its last whole sentences within
/// `budget` tokens, or if not even the last sentence fits, the last words that do.
fn overlap_tail<'a>(chunk: &[Piece<'a>], budget: usize, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Piece<'a>> {
    if budget == 0 {
        return Vec::new();
    }
    let sentences: Vec<Piece<'a>> = chunk.iter().flat_map(|piece| split_piece(piece, sentences)).collect();
    let tail = longest_suffix(&sentences, budget, count_tokens);
    if !tail.is_empty() {
        return tail;
    }
    let Some(last) = sentences.last() else { return Vec::new() };
    let words = split_piece(last, |text| text.split_whitespace().collect());
    longest_suffix(&words, budget, count_tokens)
}

/// Splits a piece with `split`; the first part keeps the piece's joint, the rest get spaces.
fn split_piece<'a>(piece: &Piece<'a>, split: impl Fn(&'a str) -> Vec<&'a str>) -> Vec<Piece<'a>> {
    split(piece.text)
        .into_iter()
        .enumerate()
        .map(|(index, text)| Piece {
            text,
            joint: if index == 0 { piece.joint } else { Joint::Space },
            paragraph: piece.paragraph,
        })
        .collect()
}

fn longest_suffix<'a>(pieces: &[Piece<'a>], budget: usize, count_tokens: &dyn Fn(&str) -> usize) -> Vec<Piece<'a>> {
    let mut start = pieces.len();
    while start > 0 && count_tokens(&render(&pieces[start - 1..])) <= budget {
        start -= 1;
    }
    pieces[start..].to_vec()
}

/// Starts a chunk with as much of the overlap as fits in front of `piece`, then `piece`.
fn start_with_overlap<'a>(
    tail: &[Piece<'a>],
    piece: Piece<'a>,
    max: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> (Vec<Piece<'a>>, String) {
    for start in 0..tail.len() {
        let mut pieces = tail[start..].to_vec();
        pieces.push(piece);
        let text = render(&pieces);
        if count_tokens(&text) <= max {
            return (pieces, text);
        }
    }
    (vec![piece], piece.text.to_owned())
}

/// Joins pieces with their joints; the first piece's joint is not written.
fn render(pieces: &[Piece<'_>]) -> String {
    let mut text = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        if index > 0 {
            text.push_str(piece.joint.as_str());
        }
        text.push_str(piece.text);
    }
    text
}

fn finish(pieces: &[Piece<'_>], text: String, position: usize, count_tokens: &dyn Fn(&str) -> usize) -> Chunk {
    let first_paragraph = pieces.first().map_or(0, |piece| piece.paragraph);
    let tokens = count_tokens(&text);
    Chunk { text, position, first_paragraph, tokens }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    fn options(max_tokens: usize, overlap_tokens: usize) -> ChunkOptions {
        ChunkOptions { max_tokens, overlap_tokens }
    }

    fn texts(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().map(|chunk| chunk.text.as_str()).collect()
    }

    #[test]
    fn defaults_are_200_and_40() {
        assert_eq!(ChunkOptions::default(), options(200, 40));
    }

    #[test]
    fn no_text_gives_no_chunks() {
        assert!(chunk(&[], &ChunkOptions::default(), &words).is_empty());
        assert!(chunk(&strings(&["", "  \n\t", ""]), &ChunkOptions::default(), &words).is_empty());
    }

    #[test]
    fn small_paragraphs_share_a_chunk() {
        let paragraphs = strings(&["", "Check the belt.", " Grease the bearings. "]);
        let chunks = chunk(&paragraphs, &ChunkOptions::default(), &words);
        assert_eq!(
            chunks,
            [Chunk {
                text: "Check the belt.\n\nGrease the bearings.".to_owned(),
                position: 0,
                first_paragraph: 1,
                tokens: 6
            }]
        );
    }

    #[test]
    fn paragraphs_are_not_split_when_they_fit_a_chunk_alone() {
        let paragraphs = strings(&["one two three. four five.", "six seven eight nine.", "ten eleven."]);
        let chunks = chunk(&paragraphs, &options(6, 0), &words);
        assert_eq!(texts(&chunks), ["one two three. four five.", "six seven eight nine.\n\nten eleven."]);
        assert_eq!(chunks.iter().map(|chunk| chunk.first_paragraph).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(chunks.iter().map(|chunk| chunk.position).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn the_next_chunk_starts_with_whole_sentences_from_the_last() {
        let paragraphs = strings(&["Alpha one. Beta two three. Gamma four.", "Delta five six seven."]);
        let chunks = chunk(&paragraphs, &options(8, 3), &words);
        assert_eq!(texts(&chunks), ["Alpha one. Beta two three. Gamma four.", "Gamma four.\n\nDelta five six seven."]);
        assert_eq!(chunks[1].first_paragraph, 0);
        assert_eq!(chunks[1].tokens, 6);
    }

    #[test]
    fn overlap_falls_back_to_words_when_no_sentence_fits() {
        let paragraphs = strings(&["a b c d e f.", "g h i."]);
        let chunks = chunk(&paragraphs, &options(6, 2), &words);
        assert_eq!(texts(&chunks), ["a b c d e f.", "e f.\n\ng h i."]);
    }

    #[test]
    fn overlap_is_cut_to_keep_the_chunk_within_budget() {
        let paragraphs = strings(&["a b. c d.", "e f g h i."]);
        let chunks = chunk(&paragraphs, &options(6, 4), &words);
        // "a b. c d." would all fit the overlap, but only "c d." fits next to the new paragraph.
        assert_eq!(texts(&chunks), ["a b. c d.", "e f g h i."]);
        let chunks = chunk(&paragraphs, &options(7, 4), &words);
        assert_eq!(texts(&chunks), ["a b. c d.", "c d.\n\ne f g h i."]);
    }

    #[test]
    fn long_paragraphs_split_at_sentences_then_words() {
        let paragraphs = strings(&["One two! Three four? \"Five six.\" Seven eight nine ten eleven twelve."]);
        let chunks = chunk(&paragraphs, &options(4, 0), &words);
        assert_eq!(texts(&chunks), ["One two! Three four?", "\"Five six.\" Seven eight", "nine ten eleven twelve."]);
    }

    #[test]
    fn words_too_long_for_the_budget_are_cut_into_characters() {
        let characters = |text: &str| text.chars().count();
        let paragraphs = strings(&["tiny", "abcdefghij"]);
        let chunks = chunk(&paragraphs, &options(4, 0), &characters);
        assert_eq!(texts(&chunks), ["tiny", "abcd", "efgh", "ij"]);
        assert!(chunks.iter().all(|chunk| chunk.tokens <= 4));
    }

    #[test]
    fn zero_budget_is_treated_as_one() {
        let chunks = chunk(&strings(&["a b"]), &options(0, 0), &words);
        assert_eq!(texts(&chunks), ["a", "b"]);
    }

    #[test]
    fn overlap_as_large_as_the_budget_still_makes_progress() {
        let paragraphs = strings(&["a. b. c. d. e. f."]);
        let chunks = chunk(&paragraphs, &options(2, 2), &words);
        assert_eq!(texts(&chunks), ["a. b.", "b. c.", "c. d.", "d. e.", "e. f."]);
    }

    #[test]
    fn sentence_boundaries_need_whitespace_after_the_mark() {
        assert_eq!(
            sentences("Version 1.2 is out. Update now!Really? Yes"),
            ["Version 1.2 is out.", "Update now!Really?", "Yes"]
        );
        assert_eq!(sentences("  ...  "), ["..."]);
        assert!(sentences("   ").is_empty());
    }

    #[test]
    fn content_hash_is_hex_sha256() {
        assert_eq!(content_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(content_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(content_hash_bytes(b"abc"), content_hash("abc"));
        assert_ne!(content_hash_bytes(b"\x80"), content_hash_bytes(b"\x81"));
    }

    /// Paragraphs of unique words ("w0", "w1", ...), some ending a sentence, so the
    /// input's word sequence can be located exactly inside every chunk.
    fn paragraphs_strategy() -> impl Strategy<Value = Vec<String>> {
        let word_ending = prop_oneof![4 => Just(""), 1 => Just("."), 1 => Just("!"), 1 => Just("?"), 1 => Just(",")];
        prop::collection::vec(prop::collection::vec(word_ending, 0..40), 0..8).prop_map(|paragraphs| {
            let mut next = 0;
            paragraphs
                .into_iter()
                .map(|endings| {
                    let words: Vec<String> = endings
                        .into_iter()
                        .map(|ending| {
                            next += 1;
                            format!("w{next}{ending}")
                        })
                        .collect();
                    words.join(" ")
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn chunks_fit_the_budget(paragraphs in paragraphs_strategy(), max in 1usize..30, overlap in 0usize..20) {
            let chunks = chunk(&paragraphs, &options(max, overlap), &words);
            for (position, chunk) in chunks.iter().enumerate() {
                prop_assert!(!chunk.text.trim().is_empty());
                prop_assert_eq!(chunk.position, position);
                prop_assert_eq!(chunk.tokens, words(&chunk.text));
                prop_assert!(chunk.tokens <= max, "{} tokens > {}: {:?}", chunk.tokens, max, chunk.text);
                prop_assert!(chunk.first_paragraph < paragraphs.len());
            }
        }

        #[test]
        fn every_word_appears_in_order(paragraphs in paragraphs_strategy(), max in 1usize..30, overlap in 0usize..20) {
            let input: Vec<&str> = paragraphs.iter().flat_map(|paragraph| paragraph.split_whitespace()).collect();
            let chunks = chunk(&paragraphs, &options(max, overlap), &words);
            // Each chunk is a run of consecutive input words; it may start inside the
            // previous chunk (the overlap) but never after its end, and always adds words.
            let mut covered = 0;
            for chunk in &chunks {
                let chunk_words: Vec<&str> = chunk.text.split_whitespace().collect();
                let start = input.iter().position(|word| *word == chunk_words[0]);
                prop_assert!(start.is_some(), "chunk starts with an unknown word: {:?}", chunk.text);
                let start = start.unwrap_or_default();
                prop_assert!(start <= covered, "words skipped before {:?}", chunk.text);
                let end = start + chunk_words.len();
                prop_assert!(end <= input.len() && input[start..end] == chunk_words[..], "not input order: {:?}", chunk.text);
                prop_assert!(end > covered, "chunk adds nothing new: {:?}", chunk.text);
                covered = end;
            }
            prop_assert_eq!(covered, input.len());
        }

        #[test]
        fn chunking_is_deterministic(paragraphs in paragraphs_strategy(), max in 1usize..30, overlap in 0usize..20) {
            let options = options(max, overlap);
            prop_assert_eq!(chunk(&paragraphs, &options, &words), chunk(&paragraphs, &options, &words));
        }

        #[test]
        fn character_budgets_hold_for_any_text(paragraphs in prop::collection::vec(".{0,80}", 0..6), max in 1usize..20) {
            let characters = |text: &str| text.chars().count();
            let chunks = chunk(&paragraphs, &options(max, max / 3), &characters);
            for chunk in &chunks {
                prop_assert!(!chunk.text.is_empty());
                prop_assert!(chunk.tokens <= max, "{} > {}: {:?}", chunk.tokens, max, chunk.text);
            }
            // Ignoring whitespace, the input is a subsequence of the chunks' text.
            let output: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect();
            let mut output = output.chars().filter(|c| !c.is_whitespace());
            for expected in paragraphs.iter().flat_map(|paragraph| paragraph.chars()).filter(|c| !c.is_whitespace()) {
                prop_assert!(output.any(|c| c == expected), "lost {:?}", expected);
            }
        }
    }
}
