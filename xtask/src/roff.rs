//! Markdown to man-page roff, for the subset our documentation uses: headings, paragraphs,
//! lists, code blocks, tables, inline code, bold, italics and links.
//!
//! `## Heading` becomes `.SH HEADING`, `### Heading` `.SS Heading`; the `#` title line is
//! left out (the caller writes `.TH` and NAME). A table row becomes a tagged paragraph
//! (`.TP`): the first cell is the tag, every other cell a line `header: cell` (just `cell` in
//! a two-column table), so a wide table reads well in a terminal without tbl. Links keep their text only.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Renders `markdown` to roff body text (no `.TH`).
#[must_use]
pub fn render(markdown: &str) -> String {
    let mut out = Roff::default();
    let mut table: Option<Table> = None;
    let mut heading: Option<(HeadingLevel, String)> = None;
    let mut list_depth = 0usize;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        if let Some(t) = table.as_mut() {
            if t.handle(&event) {
                let t = table.take().expect("just checked");
                t.render(&mut out);
            }
            continue;
        }
        if let Some((_, text)) = heading.as_mut() {
            match event {
                Event::End(TagEnd::Heading(level)) => {
                    let (_, text) = heading.take().expect("just checked");
                    match level {
                        HeadingLevel::H1 => {}
                        HeadingLevel::H2 => out.request(&format!("SH {}", text.to_uppercase())),
                        _ => out.request(&format!("SS {text}")),
                    }
                }
                Event::Text(s) | Event::Code(s) => text.push_str(&escape(&s)),
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::Heading { level, .. }) => heading = Some((level, String::new())),
            Event::Start(Tag::Table(_)) => table = Some(Table::default()),
            Event::Start(Tag::Paragraph) if list_depth == 0 => out.request("PP"),
            Event::End(TagEnd::Paragraph) => out.newline(),
            Event::Start(Tag::List(_)) => {
                list_depth += 1;
                if list_depth > 1 {
                    out.request("RS 2");
                }
            }
            Event::End(TagEnd::List(_)) => {
                if list_depth > 1 {
                    out.request("RE");
                }
                list_depth -= 1;
                if list_depth == 0 {
                    out.request("PP");
                }
            }
            Event::Start(Tag::Item) => out.request("IP \\(bu 2"),
            Event::End(TagEnd::Item) => out.newline(),
            Event::Start(Tag::CodeBlock(_)) => {
                out.request("PP");
                out.request("RS 4");
                out.request("nf");
                out.in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                out.in_code = false;
                out.request("fi");
                out.request("RE");
            }
            Event::Start(Tag::Strong) => out.text("\\fB"),
            Event::End(TagEnd::Strong | TagEnd::Emphasis) => out.text("\\fR"),
            Event::Start(Tag::Emphasis) => out.text("\\fI"),
            Event::Text(s) => {
                if out.in_code {
                    out.code_block(&s);
                } else {
                    out.text(&escape(&s));
                }
            }
            Event::Code(s) => out.text(&format!("\\fB{}\\fR", escape(&s))),
            Event::SoftBreak => out.text(" "),
            Event::HardBreak => out.request("br"),
            _ => {}
        }
    }
    out.finish()
}

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII hyphens in copy-paste).
#[must_use]
pub fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

#[derive(Default)]
struct Roff {
    out: String,
    in_code: bool,
}

impl Roff {
    /// A request line such as `.PP`, on its own line.
    fn request(&mut self, request: &str) {
        self.newline();
        self.out.push('.');
        self.out.push_str(request);
        self.out.push('\n');
    }

    /// Ends the current text line, if any.
    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// Running text (already escaped); a line never starts with `.` or `'`.
    fn text(&mut self, text: &str) {
        if self.out.is_empty() || self.out.ends_with('\n') {
            let text = text.trim_start();
            if text.starts_with('.') || text.starts_with('\'') {
                self.out.push_str("\\&");
            }
            self.out.push_str(text);
        } else {
            self.out.push_str(text);
        }
    }

    /// Verbatim lines of a code block (escaped, each line protected).
    fn code_block(&mut self, text: &str) {
        for line in text.lines() {
            let line = escape(&line.replace('\t', "    "));
            if line.starts_with('.') || line.starts_with('\'') {
                self.out.push_str("\\&");
            }
            self.out.push_str(&line);
            self.out.push('\n');
        }
    }

    fn finish(mut self) -> String {
        self.newline();
        self.out
    }
}

/// A table being collected: header cells and rows of rendered cell text.
#[derive(Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    cell: String,
    in_head: bool,
}

impl Table {
    /// Takes one event; true when the table ended.
    fn handle(&mut self, event: &Event<'_>) -> bool {
        match event {
            Event::Start(Tag::TableHead) => self.in_head = true,
            Event::End(TagEnd::TableHead) => self.in_head = false,
            Event::Start(Tag::TableRow) => self.rows.push(Vec::new()),
            Event::Start(Tag::TableCell) => self.cell.clear(),
            Event::End(TagEnd::TableCell) => {
                let cell = self.cell.trim().to_owned();
                if self.in_head {
                    self.header.push(cell);
                } else if let Some(row) = self.rows.last_mut() {
                    row.push(cell);
                }
            }
            Event::Text(s) => self.cell.push_str(&escape(s)),
            Event::Code(s) => self.cell.push_str(&format!("\\fB{}\\fR", escape(s))),
            Event::Start(Tag::Strong) => self.cell.push_str("\\fB"),
            Event::Start(Tag::Emphasis) => self.cell.push_str("\\fI"),
            Event::End(TagEnd::Strong | TagEnd::Emphasis) => self.cell.push_str("\\fR"),
            Event::SoftBreak | Event::HardBreak => self.cell.push(' '),
            Event::End(TagEnd::Table) => return true,
            _ => {}
        }
        false
    }

    fn render(self, out: &mut Roff) {
        for row in self.rows.into_iter().filter(|r| !r.is_empty()) {
            out.request("TP");
            out.text(&row[0]);
            out.newline();
            let mut first = true;
            for (header, cell) in self.header.iter().zip(&row).skip(1) {
                if cell.is_empty() {
                    continue;
                }
                if !first {
                    out.request("br");
                }
                first = false;
                // Two columns: the tag and its text; more: label each cell by its header.
                if header.is_empty() || self.header.len() == 2 {
                    out.text(cell);
                } else {
                    out.text(&format!("{header}: {cell}"));
                }
                out.newline();
            }
        }
        out.request("PP");
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn headings_paragraphs_code_and_tables() {
        let roff = render(
            "# t(5)\n\n## Door sections\n\nA `key = value` line.\n.dot\n\n\
             | directive | default |\n|---|---|\n| `Sequence` | — |\n\n```ini\n[x]\n.y\n```\n",
        );
        assert!(roff.contains(".SH DOOR SECTIONS\n"), "{roff}");
        assert!(
            roff.contains("A \\fBkey = value\\fR line. .dot\n"),
            "{roff}"
        );
        assert!(roff.contains(".TP\n\\fBSequence\\fR\n—\n"), "{roff}");
        assert!(roff.contains(".nf\n[x]\n\\&.y\n.fi"), "{roff}");
        assert!(!roff.contains("t(5)"), "{roff}");
        // No text line starts with a control character.
        for line in roff.lines() {
            assert!(!line.starts_with('\''), "{line}");
        }
    }
}
