//! Text extraction: turn a document file into a title and a list of plain-text paragraphs.
//!
//! The job of this module is to get the words out of the formats people keep their
//! handbooks in (plain text, Markdown, HTML and PDF) and hand them on as paragraphs,
//! the unit [`crate::chunk`](mod@crate::chunk) packs into chunks. Markup is dropped (link URLs, images,
//! scripts, navigation), whitespace inside a paragraph is collapsed to single spaces,
//! and empty paragraphs never appear. Code blocks (`pre` in HTML, fenced code in
//! Markdown) keep their line breaks.
//!
//! The format comes from the file extension, see [`DocumentKind::from_path`]. Bad input
//! never panics: text is decoded leniently, HTML and Markdown parsers accept anything,
//! and a PDF that cannot be read (corrupt, encrypted, or one that makes the PDF parser
//! panic) gives [`ExtractError::Pdf`].

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ego_tree::iter::Edge;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use scraper::{Html, Node};
use thiserror::Error;

/// File extensions [`extract`] understands, lower case, without the dot.
pub const SUPPORTED_EXTENSIONS: &[&str] = &["txt", "text", "log", "md", "markdown", "html", "htm", "pdf"];

/// The name errors use for documents given as bytes rather than read from a file.
const IN_MEMORY: &str = "<in-memory document>";

/// The format of a document, which decides how its text is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// Plain text: paragraphs are separated by blank lines.
    Text,
    /// CommonMark Markdown (with tables, task lists and front matter).
    Markdown,
    /// An HTML page.
    Html,
    /// A PDF file with a text layer (scanned pages without one give no text).
    Pdf,
}

impl DocumentKind {
    /// The kind for a file name's extension (case-insensitive), or `None` if unsupported.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "txt" | "text" | "log" => Some(Self::Text),
            "md" | "markdown" => Some(Self::Markdown),
            "html" | "htm" => Some(Self::Html),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
            Self::Pdf => "PDF",
        })
    }
}

/// The text of one document: an optional title and its paragraphs in reading order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The format the text came from.
    pub kind: DocumentKind,
    /// The document's title: the first H1 in Markdown, `<title>` (else the first `<h1>`)
    /// in HTML, the Title entry of the document information in a PDF; `None` for text.
    pub title: Option<String>,
    /// Non-empty paragraphs (headings, list items and table cells count as paragraphs).
    pub paragraphs: Vec<String>,
}

/// Why a document could not be extracted. Every message starts with the file's path.
#[derive(Debug, Error)]
pub enum ExtractError {
    /// The file's extension is not one of [`SUPPORTED_EXTENSIONS`].
    #[error("{}: unsupported file type; supported extensions are {}", path.display(), supported_list())]
    Unsupported {
        /// The file that was asked for.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not a PDF the extractor can read: corrupt, truncated, encrypted, or unusual
    /// enough to make the PDF parser give up.
    #[error("{}: cannot extract text from the PDF: {reason}", path.display())]
    Pdf {
        /// The file that was asked for (`<in-memory document>` for [`extract_bytes`]).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ExtractError {
    /// The same error about another file: for callers that read the file themselves and
    /// used [`extract_bytes`], whose errors name `<in-memory document>`.
    pub fn with_path(self, path: &Path) -> Self {
        let path = path.to_path_buf();
        match self {
            Self::Unsupported { .. } => Self::Unsupported { path },
            Self::Read { source, .. } => Self::Read { path, source },
            Self::Pdf { reason, .. } => Self::Pdf { path, reason },
        }
    }
}

fn supported_list() -> String {
    SUPPORTED_EXTENSIONS.iter().map(|ext| format!(".{ext}")).collect::<Vec<_>>().join(", ")
}

/// The kind of document at `path`, judging by its extension; same as [`DocumentKind::from_path`].
pub fn kind_of(path: &Path) -> Option<DocumentKind> {
    DocumentKind::from_path(path)
}

/// Whether [`extract`] supports this file, judging by its extension.
pub fn is_supported(path: &Path) -> bool {
    DocumentKind::from_path(path).is_some()
}

/// Reads the file at `path` and extracts its text, picking the format from the extension.
///
/// An empty file gives a document with no paragraphs, except for PDF, where it is an error.
pub fn extract(path: &Path) -> Result<Document, ExtractError> {
    let kind = DocumentKind::from_path(path).ok_or_else(|| ExtractError::Unsupported { path: path.to_path_buf() })?;
    let bytes = std::fs::read(path).map_err(|source| ExtractError::Read { path: path.to_path_buf(), source })?;
    let document = extract_named(&bytes, kind, path)?;
    tracing::debug!(path = %path.display(), %kind, paragraphs = document.paragraphs.len(), "extracted document");
    Ok(document)
}

/// Extracts the text of a document held in memory, in the given format.
///
/// Errors name the document `<in-memory document>`; [`ExtractError::with_path`] renames it.
pub fn extract_bytes(bytes: &[u8], kind: DocumentKind) -> Result<Document, ExtractError> {
    extract_named(bytes, kind, Path::new(IN_MEMORY))
}

fn extract_named(bytes: &[u8], kind: DocumentKind, path: &Path) -> Result<Document, ExtractError> {
    let (title, paragraphs) = match kind {
        DocumentKind::Text => (None, text_paragraphs(&decode(bytes))),
        DocumentKind::Markdown => markdown(&decode(bytes)),
        DocumentKind::Html => html(&decode(bytes)),
        DocumentKind::Pdf => pdf(bytes).map_err(|reason| ExtractError::Pdf { path: path.to_path_buf(), reason })?,
    };
    Ok(Document { kind, title, paragraphs })
}

/// Decodes UTF-8, replacing invalid sequences with U+FFFD, and drops a byte order mark.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Collapses every run of whitespace to one space and trims the ends.
fn normalize_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tidies preformatted text (code): keeps the lines, drops trailing spaces and blank edges.
fn tidy_preformatted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let first = lines.iter().position(|line| !line.is_empty());
    let last = lines.iter().rposition(|line| !line.is_empty());
    match (first, last) {
        (Some(first), Some(last)) => lines[first..=last].join("\n"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Plain text

/// Paragraphs are runs of non-blank lines; the lines of a paragraph are joined by spaces.
fn text_paragraphs(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            push_lines(&mut paragraphs, &mut current);
        } else {
            current.push(line);
        }
    }
    push_lines(&mut paragraphs, &mut current);
    paragraphs
}

fn push_lines(paragraphs: &mut Vec<String>, lines: &mut Vec<&str>) {
    let paragraph = normalize_whitespace(&lines.join(" "));
    if !paragraph.is_empty() {
        paragraphs.push(paragraph);
    }
    lines.clear();
}

// ---------------------------------------------------------------------------------------
// Collecting paragraphs from a markup parser's stream of text and block boundaries

/// Gathers text into paragraphs; the markup walkers call [`Paragraphs::end`] at block edges.
#[derive(Default)]
struct Paragraphs {
    done: Vec<String>,
    current: String,
    preformatted: bool,
}

impl Paragraphs {
    fn push(&mut self, text: &str, preformatted: bool) {
        self.current.push_str(text);
        self.preformatted |= preformatted;
    }

    /// Ends the paragraph being gathered; returns it if it was not empty.
    fn end(&mut self) -> Option<&str> {
        let text = std::mem::take(&mut self.current);
        let paragraph = if self.preformatted { tidy_preformatted(&text) } else { normalize_whitespace(&text) };
        self.preformatted = false;
        if paragraph.is_empty() {
            return None;
        }
        self.done.push(paragraph);
        self.done.last().map(String::as_str)
    }

    fn finish(mut self) -> Vec<String> {
        self.end();
        self.done
    }
}

// ---------------------------------------------------------------------------------------
// Markdown

/// Walks pulldown-cmark's events: every block start or end closes a paragraph, inline
/// markup just passes its text through, images and front matter are skipped.
fn markdown(text: &str) -> (Option<String>, Vec<String>) {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut out = Paragraphs::default();
    let mut title = None;
    // Depth inside images and front matter, whose text is dropped.
    let mut skipping = 0usize;
    let mut in_code = false;
    for event in Parser::new_ext(text, options) {
        match event {
            Event::Start(Tag::Image { .. } | Tag::MetadataBlock(_)) => skipping += 1,
            Event::End(TagEnd::Image | TagEnd::MetadataBlock(_)) => skipping = skipping.saturating_sub(1),
            _ if skipping > 0 => {}
            Event::Start(tag) => {
                if is_markdown_block(&tag) {
                    out.end();
                }
                in_code = matches!(tag, Tag::CodeBlock(_));
            }
            Event::End(TagEnd::Heading(level)) => {
                let heading = out.end().map(str::to_owned);
                if level == HeadingLevel::H1 && title.is_none() {
                    title = heading;
                }
            }
            Event::End(tag) => {
                if is_markdown_block_end(&tag) {
                    out.end();
                }
                if tag == TagEnd::CodeBlock {
                    in_code = false;
                }
            }
            Event::Text(text) => out.push(&text, in_code),
            Event::Code(text) | Event::InlineMath(text) | Event::DisplayMath(text) => out.push(&text, false),
            Event::SoftBreak | Event::HardBreak => out.push(" ", false),
            Event::Rule => {
                out.end();
            }
            // Raw HTML tags, footnote markers and task checkboxes carry no prose.
            Event::Html(_) | Event::InlineHtml(_) | Event::FootnoteReference(_) | Event::TaskListMarker(_) => {}
        }
    }
    (title, out.finish())
}

fn is_markdown_block(tag: &Tag<'_>) -> bool {
    !matches!(
        tag,
        Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
            | Tag::Image { .. }
    )
}

fn is_markdown_block_end(tag: &TagEnd) -> bool {
    !matches!(
        tag,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::Image
    )
}

// ---------------------------------------------------------------------------------------
// HTML

/// Elements whose content is never text of the document.
const HTML_SKIPPED: &[&str] = &["head", "script", "style", "nav", "noscript", "template", "iframe", "object"];

/// Elements that start and end a paragraph; everything else is inline and passes text through.
const HTML_BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Parses with html5ever (through scraper), which accepts any input the way browsers do and
/// decodes character references, then walks the tree without recursion.
fn html(text: &str) -> (Option<String>, Vec<String>) {
    let document = Html::parse_document(text);
    let mut out = Paragraphs::default();
    // Depth inside skipped elements, and inside <pre>.
    let mut skipping = 0usize;
    let mut pre = 0usize;
    for edge in document.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(element) => {
                    let name = element.name();
                    if skipping > 0 || HTML_SKIPPED.contains(&name) {
                        skipping += 1;
                    } else if name == "br" {
                        out.push("\n", pre > 0);
                    } else if HTML_BLOCKS.contains(&name) {
                        out.end();
                        if name == "pre" {
                            pre += 1;
                        }
                    }
                }
                Node::Text(text) if skipping == 0 => out.push(text, pre > 0),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(element) = node.value() {
                    let name = element.name();
                    if skipping > 0 {
                        skipping -= 1;
                    } else if HTML_BLOCKS.contains(&name) {
                        out.end();
                        if name == "pre" {
                            pre = pre.saturating_sub(1);
                        }
                    }
                }
            }
        }
    }
    let title = first_element_text(&document, "title").or_else(|| first_element_text(&document, "h1"));
    (title, out.finish())
}

/// The whitespace-normalized text of the first element with this name, if it has any.
fn first_element_text(document: &Html, name: &str) -> Option<String> {
    let element = document
        .tree
        .root()
        .descendants()
        .find(|node| node.value().as_element().is_some_and(|element| element.name() == name))?;
    let text: String = element.descendants().filter_map(|node| node.value().as_text().map(|text| &**text)).collect();
    Some(normalize_whitespace(&text)).filter(|title| !title.is_empty())
}

// ---------------------------------------------------------------------------------------
// PDF

/// Extracts a PDF's text with pdf-extract; the error is a reason for [`ExtractError::Pdf`].
///
/// pdf-extract (and lopdf under it) panic on some malformed files, so the work runs under
/// `catch_unwind`; the panic message still reaches the panic hook (stderr by default).
fn pdf(bytes: &[u8]) -> Result<(Option<String>, Vec<String>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".to_owned());
    }
    if !bytes.windows(5).take(1024).any(|window| window == b"%PDF-") {
        return Err("not a PDF file (no %PDF- header)".to_owned());
    }
    match panic::catch_unwind(AssertUnwindSafe(|| pdf_unguarded(bytes))) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::warn!(%message, "the PDF parser panicked");
            Err(format!("the PDF parser gave up on malformed content ({message})"))
        }
    }
}

fn pdf_unguarded(bytes: &[u8]) -> Result<(Option<String>, Vec<String>), String> {
    let document = pdf_extract::Document::load_mem(bytes).map_err(|error| format!("the file is damaged: {error}"))?;
    // lopdf decrypts on load when the user password is empty; otherwise it stays encrypted.
    if document.is_encrypted() {
        return Err("the PDF is encrypted and needs a password".to_owned());
    }
    let title = pdf_title(&document);
    let mut text = String::new();
    let mut output = pdf_extract::PlainTextOutput::new(&mut text);
    pdf_extract::output_doc(&document, &mut output).map_err(|error| format!("cannot read its text: {error}"))?;
    // pdf-extract marks a vertical gap taller than a line, and a page break, with a blank line.
    Ok((title, text_paragraphs(&text)))
}

/// The Title entry of the PDF's document information dictionary, if set.
fn pdf_title(document: &pdf_extract::Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let info = match info {
        pdf_extract::Object::Reference(id) => document.get_dictionary(*id).ok()?,
        other => other.as_dict().ok()?,
    };
    let title = pdf_extract::decode_text_string(info.get(b"Title").ok()?).ok()?;
    Some(normalize_whitespace(&title)).filter(|title| !title.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraphs(bytes: &[u8], kind: DocumentKind) -> Vec<String> {
        extract_bytes(bytes, kind).expect("extracts").paragraphs
    }

    #[test]
    fn kind_comes_from_the_extension_in_any_case() {
        assert_eq!(DocumentKind::from_path(Path::new("a/notes.TXT")), Some(DocumentKind::Text));
        assert_eq!(DocumentKind::from_path(Path::new("boot.log")), Some(DocumentKind::Text));
        assert_eq!(DocumentKind::from_path(Path::new("README.markdown")), Some(DocumentKind::Markdown));
        assert_eq!(DocumentKind::from_path(Path::new("index.Htm")), Some(DocumentKind::Html));
        assert_eq!(DocumentKind::from_path(Path::new("manual.pdf")), Some(DocumentKind::Pdf));
        assert_eq!(DocumentKind::from_path(Path::new("archive.tar.gz")), None);
        assert_eq!(DocumentKind::from_path(Path::new("Makefile")), None);
        assert!(is_supported(Path::new("guide.md")));
        assert!(!is_supported(Path::new("setup.exe")));
    }

    #[test]
    fn unsupported_error_names_the_file_and_the_supported_extensions() {
        let error = extract(Path::new("/tmp/setup.exe")).unwrap_err();
        assert!(matches!(error, ExtractError::Unsupported { .. }));
        let message = error.to_string();
        assert!(message.starts_with("/tmp/setup.exe: unsupported file type"), "{message}");
        for extension in SUPPORTED_EXTENSIONS {
            assert!(message.contains(&format!(".{extension}")), "{message}");
        }
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let error = extract(Path::new("/nonexistent/edgeway/guide.txt")).unwrap_err();
        assert!(matches!(error, ExtractError::Read { .. }));
        assert!(error.to_string().starts_with("/nonexistent/edgeway/guide.txt: cannot read the file"));
    }

    #[test]
    fn text_splits_on_blank_lines_and_joins_wrapped_lines() {
        let text = "\u{feff}First line\r\n  wraps here.\r\n\r\n \t \nSecond   paragraph.\n\n\n";
        assert_eq!(paragraphs(text.as_bytes(), DocumentKind::Text), ["First line wraps here.", "Second paragraph."]);
    }

    #[test]
    fn text_survives_invalid_utf8_and_emptiness() {
        assert_eq!(paragraphs(b"caf\xE9 au lait\n\nok", DocumentKind::Text), ["caf\u{FFFD} au lait", "ok"]);
        assert!(paragraphs(b"", DocumentKind::Text).is_empty());
        assert!(paragraphs(b"\n \n\t\n", DocumentKind::Text).is_empty());
        assert!(paragraphs(b"\xEF\xBB\xBF", DocumentKind::Text).is_empty());
    }

    #[test]
    fn markdown_keeps_text_and_drops_urls_and_images() {
        let source = "# Belt guide\n\nSee the [safety sheet](https://example.com/s.pdf) first,\nthen *start*.\n\n\
                      ![diagram](belt.png)\n\n## Checks\n\n- one\n- two with `code`\n\n```\nlet a = 1;\n\nlet b = 2;\n```\n\n\
                      | A | B |\n|---|---|\n| x | y |\n\n> quoted <b>bold</b> text\n";
        let document = extract_bytes(source.as_bytes(), DocumentKind::Markdown).unwrap();
        assert_eq!(document.title.as_deref(), Some("Belt guide"));
        assert_eq!(
            document.paragraphs,
            [
                "Belt guide",
                "See the safety sheet first, then start.",
                "Checks",
                "one",
                "two with code",
                "let a = 1;\n\nlet b = 2;",
                "A",
                "B",
                "x",
                "y",
                "quoted bold text",
            ]
        );
    }

    #[test]
    fn markdown_title_is_the_first_h1_only() {
        let document = extract_bytes(b"## Intro\n\ntext\n\n# Real title\n\n# Later", DocumentKind::Markdown).unwrap();
        assert_eq!(document.title.as_deref(), Some("Real title"));
        let document = extract_bytes(b"no heading", DocumentKind::Markdown).unwrap();
        assert_eq!(document.title, None);
    }

    #[test]
    fn markdown_skips_front_matter() {
        let document = extract_bytes(b"---\nsecret: yes\n---\n\nBody.", DocumentKind::Markdown).unwrap();
        assert_eq!(document.paragraphs, ["Body."]);
    }

    #[test]
    fn html_keeps_block_text_and_drops_scripts_styles_and_navigation() {
        let source = r#"<html><head><title> Belt &amp; rollers </title><style>p{}</style></head>
            <body><nav>Home | Docs</nav><script>alert(1)</script>
            <h1>Guide</h1><p>Tension &lt; 5&nbsp;N, see <a href="http://x">the table</a>.</p>
            <div>Loose div text<p>inner</p>tail</div>
            <ul><li>one</li><li>two<br>lines</li></ul>
            <table><tr><td>cell A</td><td>cell B</td></tr></table>
            <pre>  fn main() {
      run();
  }
</pre><blockquote>quote</blockquote><img alt="picture"></body></html>"#;
        let document = extract_bytes(source.as_bytes(), DocumentKind::Html).unwrap();
        assert_eq!(document.title.as_deref(), Some("Belt & rollers"));
        assert_eq!(
            document.paragraphs,
            [
                "Guide",
                "Tension < 5 N, see the table.",
                "Loose div text",
                "inner",
                "tail",
                "one",
                "two lines",
                "cell A",
                "cell B",
                "  fn main() {\n      run();\n  }",
                "quote",
            ]
        );
    }

    #[test]
    fn html_title_falls_back_to_the_first_h1() {
        let document =
            extract_bytes(b"<body><h2>Sub</h2><h1>Main <em>one</em></h1></body>", DocumentKind::Html).unwrap();
        assert_eq!(document.title.as_deref(), Some("Main one"));
        let document = extract_bytes(b"<p>no title</p>", DocumentKind::Html).unwrap();
        assert_eq!(document.title, None);
    }

    #[test]
    fn malformed_html_and_markdown_do_not_panic() {
        for source in [
            &b"<p>unclosed <b>bold <td>cell</table></div></p>"[..],
            b"<<<>>></script><script>never closed",
            b"\xFF\xFE<\x00h\x00t\x00",
            b"",
            b"<!-- only a comment",
        ] {
            extract_bytes(source, DocumentKind::Html).unwrap();
            extract_bytes(source, DocumentKind::Markdown).unwrap();
        }
        let document = extract_bytes(b"<p>unclosed <b>bold <td>cell</table></div></p>", DocumentKind::Html).unwrap();
        assert_eq!(document.paragraphs, ["unclosed bold cell"]);
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // html5ever's tree building is quadratic in nesting depth, so HTML stays shallower here.
        let html = "<div>".repeat(5_000) + "deep" + &"</div>".repeat(5_000);
        assert_eq!(paragraphs(html.as_bytes(), DocumentKind::Html), ["deep"]);
        let markdown = ">".repeat(50_000) + " deep";
        assert_eq!(paragraphs(markdown.as_bytes(), DocumentKind::Markdown), ["deep"]);
    }

    #[test]
    fn bad_pdfs_are_clean_errors() {
        for (bytes, reason) in [
            (&b""[..], "the file is empty"),
            (b"just some text", "not a PDF file"),
            (b"%PDF-1.7\n\x00\x01garbage\xFF\xFE trailer <<>> %%EOF", "the file is damaged"),
        ] {
            let error = extract_bytes(bytes, DocumentKind::Pdf).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, ExtractError::Pdf { .. }));
            assert!(message.starts_with("<in-memory document>: cannot extract text from the PDF: "), "{message}");
            assert!(message.contains(reason), "{message}");
        }
        let error = extract_bytes(b"", DocumentKind::Pdf).unwrap_err().with_path(Path::new("manual.pdf"));
        assert_eq!(error.to_string(), "manual.pdf: cannot extract text from the PDF: the file is empty");
    }
}
