//! What both panels draw alike, and what a panel asks the application to do.

use std::path::PathBuf;

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Row, Table};

/// What a key asks of the application.
pub enum Action {
    None,
    /// A line for the message area.
    Message(String),
    /// An error, as cpr prints it.
    Error(String),
    /// A scrollable text screen: title, text.
    Show(String, String),
    /// Run a checkpoint or restart.
    Run(crate::job::Request),
    /// Ask before removing this statefile.
    ConfirmRemove(PathBuf),
}

pub fn label_style(focused: bool) -> Style {
    if focused {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    }
}

/// A bordered box; the one in focus has a double border and a bold title.
pub fn panel_block(title: &str, focused: bool) -> Block<'static> {
    let block = Block::bordered().title(title.to_string());
    if focused {
        block
            .border_type(BorderType::Double)
            .title_style(label_style(true))
    } else {
        block
    }
}

/// A list panel: a bold header, the selected row reversed and marked `>`.
pub fn list_table<'a, const N: usize>(
    rows: Vec<Row<'a>>,
    widths: [Constraint; N],
    header: [&'a str; N],
    title: &str,
    focused: bool,
) -> Table<'a> {
    Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(panel_block(title, focused))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">")
}

/// `Label: [text_____]`, the text's tail if it is longer than the field.
pub fn field_line(label: &str, text: &str, focused: bool, width: u16) -> Line<'static> {
    let inner = (width as usize).saturating_sub(label.len() + 3).max(4);
    let mut shown = clip_left(text, inner as u16);
    if focused {
        shown.push('_');
    }
    let padded = format!("[{shown:<inner$}]");
    Line::from(vec![
        Span::styled(label.to_string(), label_style(focused)),
        Span::styled(
            padded,
            if focused {
                Style::default().add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            },
        ),
    ])
}

pub fn button(label: &str, focused: bool) -> Span<'static> {
    let text = format!("[ {label} ]");
    if focused {
        Span::styled(text, Style::default().add_modifier(Modifier::REVERSED))
    } else {
        Span::raw(text)
    }
}

/// The first `width` characters.
pub fn clip(text: &str, width: u16) -> String {
    text.chars().take(width as usize).collect()
}

/// The last `width` characters, with `<` where the head was cut.
pub fn clip_left(text: &str, width: u16) -> String {
    let width = width as usize;
    let count = text.chars().count();
    if count <= width || width < 2 {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - (width - 1)).collect();
    format!("<{tail}")
}

/// A centred rectangle of at most `w` by `h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))])
        .flex(Flex::Center)
        .areas(v);
    r
}

/// Where the widgets of a panel were drawn last, so that a mouse click finds them.
pub struct Hits<F> {
    areas: Vec<(F, Rect)>,
}

impl<F: Copy> Hits<F> {
    pub fn new() -> Hits<F> {
        Hits { areas: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.areas.clear();
    }

    pub fn add(&mut self, what: F, area: Rect) {
        self.areas.push((what, area));
    }

    /// The widget drawn at column `col`, row `row`, and its area.
    pub fn at(&self, col: u16, row: u16) -> Option<(F, Rect)> {
        self.areas
            .iter()
            .rev()
            .find(|(_, r)| r.contains(ratatui::layout::Position { x: col, y: row }))
            .copied()
    }
}

/// The item of a bordered list or table at screen row `row`: `above` rows (border,
/// header) come before the first item shown, which is item `offset`.
pub fn item_at(area: Rect, row: u16, above: u16, offset: usize) -> Option<usize> {
    let first = area.y + above;
    (row >= first && row + 1 < area.y + area.height).then(|| offset + (row - first) as usize)
}

/// `[ label ]` buttons drawn one after the other from `area.x`, `gap` columns apart:
/// the area of each.
pub fn button_areas(area: Rect, labels: &[&str], gap: u16) -> Vec<Rect> {
    let mut x = area.x;
    labels
        .iter()
        .map(|label| {
            let width = label.chars().count() as u16 + 4;
            let r = Rect::new(x, area.y, width, 1).intersection(area);
            x += width + gap;
            r
        })
        .collect()
}
