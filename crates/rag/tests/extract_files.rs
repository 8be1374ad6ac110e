//! Extraction of real files: the conveyor belt guide in every supported format (see
//! `fixtures/`; `fixtures/make_pdf.py` regenerates the PDFs), then broken and unsupported
//! files that must give clean errors.

use std::fs;
use std::path::{Path, PathBuf};

use edgeway_rag::chunk::{chunk, ChunkOptions};
use edgeway_rag::extract::{extract, Document, DocumentKind, ExtractError};

const TITLE: &str = "TX-40 Conveyor Belt: Maintenance Guide";
const INTRO: &str = "The TX-40 is a light-duty belt conveyor for packing lines. This guide covers the routine \
                     checks that keep it running safely between the annual services done by the manufacturer.";
const DAILY: &str = "Before each shift the operator walks the full length of the belt with the drive switched off \
                     and locked out. Any fault found on the walk is written in the line book before the belt is \
                     started again.";
const LIST: [&str; 3] = [
    "Check the belt tension at the tail pulley.",
    "Look for fraying along both edges of the belt.",
    "Clear debris from under the return rollers.",
];
const GREASE: &str = "Grease the drive bearings with two pumps of lithium grease every Monday. Do not over-grease: \
                      surplus grease collects dust and shortens the life of the bearing.";
const TRACKING: &str = "If the belt drifts to one side, turn the tracking screw on the tail pulley a quarter turn at \
                        a time, and run the belt empty for two minutes between adjustments.";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A file in a scratch folder that cargo keeps for integration tests.
fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edgeway-rag-extract").join(name);
    fs::create_dir_all(path.parent().expect("has a parent")).expect("creates the scratch folder");
    fs::write(&path, bytes).expect("writes the scratch file");
    path
}

fn extract_fixture(name: &str) -> Document {
    extract(&fixture(name)).unwrap_or_else(|error| panic!("{error}"))
}

/// The list is one paragraph in plain text and PDF, where nothing marks its items.
fn list_as_one_paragraph() -> String {
    LIST.map(|item| format!("- {item}")).join(" ")
}

/// The paragraphs of the plain-text handbook (the PDF gives the same).
fn plain_text_paragraphs() -> [String; 8] {
    let list = list_as_one_paragraph();
    [TITLE, INTRO, "Daily checks", DAILY, list.as_str(), "Weekly lubrication", GREASE, TRACKING].map(str::to_owned)
}

/// The paragraphs of the Markdown and HTML handbooks, which mark list items, a table and a code
/// line; `grease` is the lubrication paragraph as that format writes it.
fn structured_paragraphs(grease: &str) -> Vec<String> {
    [
        TITLE,
        INTRO,
        "Daily checks",
        DAILY,
        LIST[0],
        LIST[1],
        LIST[2],
        "Weekly lubrication",
        grease,
        "Part",
        "Grease",
        "Drive bearing",
        "Lithium, 2 pumps",
        TRACKING,
        "tracking: +1/4 turn, wait 2 min",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn text_file() {
    let document = extract_fixture("conveyor_guide.txt");
    assert_eq!(document.kind, DocumentKind::Text);
    assert_eq!(document.title, None);
    assert_eq!(document.paragraphs, plain_text_paragraphs());
}

#[test]
fn markdown_file() {
    let document = extract_fixture("conveyor_guide.md");
    assert_eq!(document.kind, DocumentKind::Markdown);
    assert_eq!(document.title.as_deref(), Some(TITLE));
    assert_eq!(document.paragraphs, structured_paragraphs(GREASE));
    let all = document.paragraphs.join("\n");
    for dropped in ["front matter", "https://", "example.com", "tx40-side.png", "Side view"] {
        assert!(!all.contains(dropped), "{dropped:?} should not be extracted");
    }
}

#[test]
fn html_file() {
    let document = extract_fixture("conveyor_guide.html");
    assert_eq!(document.kind, DocumentKind::Html);
    assert_eq!(document.title.as_deref(), Some("TX-40 Conveyor Belt \u{2013} Maintenance Guide"));
    let grease = GREASE.replace(" and shortens", " & shortens");
    assert_eq!(document.paragraphs, structured_paragraphs(&grease));
    let all = document.paragraphs.join("\n");
    for dropped in ["script", "font-family", "Home", "Manuals", "https://", "Side view"] {
        assert!(!all.contains(dropped), "{dropped:?} should not be extracted");
    }
}

#[test]
fn pdf_file_over_two_pages() {
    let path = fixture("conveyor_guide.pdf");
    let pages = pdf_extract::Document::load(&path).expect("loads").get_pages().len();
    assert_eq!(pages, 2, "the fixture should exercise a page break");

    let document = extract_fixture("conveyor_guide.pdf");
    assert_eq!(document.kind, DocumentKind::Pdf);
    assert_eq!(document.title.as_deref(), Some(TITLE));
    assert_eq!(document.paragraphs, plain_text_paragraphs());
}

#[test]
fn pdf_with_only_an_owner_password_opens_without_one() {
    let document = extract_fixture("conveyor_guide_owner_only.pdf");
    assert_eq!(document.title.as_deref(), Some(TITLE));
    assert_eq!(document.paragraphs.first().map(String::as_str), Some(TITLE));
    assert_eq!(document.paragraphs.last().map(String::as_str), Some(TRACKING));
}

#[test]
fn pdf_that_needs_a_password_is_a_clean_error() {
    let path = fixture("conveyor_guide_locked.pdf");
    let error = extract(&path).unwrap_err();
    assert!(matches!(&error, ExtractError::Pdf { path: error_path, .. } if *error_path == path));
    let message = error.to_string();
    assert!(message.starts_with(&format!("{}: ", path.display())), "{message}");
    assert!(message.contains("encrypted and needs a password"), "{message}");
}

#[test]
fn every_format_chunks_within_budget() {
    let options = ChunkOptions { max_tokens: 40, overlap_tokens: 8 };
    let words = |text: &str| text.split_whitespace().count();
    for name in ["conveyor_guide.txt", "conveyor_guide.md", "conveyor_guide.html", "conveyor_guide.pdf"] {
        let document = extract_fixture(name);
        let chunks = chunk(&document.paragraphs, &options, &words);
        assert!(chunks.len() >= 3, "{name}: {chunks:?}");
        assert!(chunks.iter().all(|chunk| chunk.tokens <= 40 && !chunk.text.is_empty()), "{name}");
        assert!(chunks.iter().any(|chunk| chunk.text.contains("quarter turn")), "{name}");
    }
}

/// A small deterministic generator (xorshift64), so the "random" bytes are the same every run.
fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn corrupt_pdf_is_a_clean_error() {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.extend(pseudo_random_bytes(42, 4096));
    let path = scratch("corrupt.pdf", &bytes);
    let error = extract(&path).unwrap_err();
    assert!(matches!(error, ExtractError::Pdf { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("{}: cannot extract text from the PDF: ", path.display())), "{message}");
}

#[test]
fn damaged_copies_of_a_real_pdf_never_panic() {
    let original = fs::read(fixture("conveyor_guide.pdf")).expect("reads the fixture");
    let mut damaged = vec![original[..original.len() / 2].to_vec(), original[..original.len() - 40].to_vec()];
    for seed in 1..=60u64 {
        let mut copy = original.clone();
        let noise = pseudo_random_bytes(seed, 24);
        for pair in noise.chunks(3) {
            let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % copy.len();
            copy[at] = pair[2];
        }
        damaged.push(copy);
    }
    for (index, bytes) in damaged.iter().enumerate() {
        let path = scratch(&format!("damaged-{index}.pdf"), bytes);
        // Some damage is harmless; what matters is an answer instead of a panic.
        if let Err(error) = extract(&path) {
            assert!(matches!(error, ExtractError::Pdf { .. }), "{error:?}");
        }
    }
}

#[test]
fn executable_is_unsupported() {
    let path = scratch("installer.exe", b"MZ\x90\x00");
    let error = extract(&path).unwrap_err();
    assert!(matches!(error, ExtractError::Unsupported { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("installer.exe"), "{message}");
    assert!(message.contains(".txt") && message.contains(".pdf"), "{message}");
}

#[test]
fn empty_files() {
    for name in ["empty.txt", "empty.md", "empty.html"] {
        let document = extract(&scratch(name, b"")).unwrap_or_else(|error| panic!("{error}"));
        assert!(document.paragraphs.is_empty(), "{name}");
        assert_eq!(document.title, None, "{name}");
    }
    let error = extract(&scratch("empty.pdf", b"")).unwrap_err();
    assert!(error.to_string().contains("the file is empty"), "{error}");
}

#[test]
fn invalid_utf8_text_is_decoded_leniently() {
    let path = scratch("latin1.txt", b"Stra\xDFe und Br\xFCcke\n\nzweiter Absatz");
    let document = extract(&path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(document.paragraphs, ["Stra\u{FFFD}e und Br\u{FFFD}cke", "zweiter Absatz"]);
}
