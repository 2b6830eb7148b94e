//! The restart panel: a directory browser that marks statefiles, the restart options of
//! the guide (any process ID, keep the working or root directory: `cpr -r --any-pid
//! --no-cwd --no-root`), and Restart, Tell me more (`cpr -i`) and Remove (`cpr -D`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Row, TableState};

use cpr::statefile::{Statefile, reader, reader::Verify};

use crate::field::{Field, FieldKey};
use crate::job::Request;
use crate::procs;
use crate::ui::{self, Action};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Path,
    Browser,
    Options,
    Restart,
    Info,
    Remove,
}

const ORDER: [Focus; 6] = [
    Focus::Browser,
    Focus::Options,
    Focus::Restart,
    Focus::Info,
    Focus::Remove,
    Focus::Path,
];

/// One line of the browser.
struct Entry {
    name: String,
    is_dir: bool,
    statefile: bool,
    owner: String,
    modified: String,
}

pub struct RestartPanel {
    pub focus: Focus,
    dir: PathBuf,
    path: Field,
    entries: Vec<Entry>,
    browser: TableState,
    /// Letters typed in the browser to jump to a name.
    typed: String,
    options: ListState,
    any_pid: bool,
    no_cwd: bool,
    no_root: bool,
    /// Where the widgets were drawn, for the mouse.
    hits: ui::Hits<Focus>,
}

impl RestartPanel {
    pub fn new(dir: PathBuf) -> RestartPanel {
        let mut panel = RestartPanel {
            focus: Focus::Browser,
            path: Field::new("", true),
            dir: PathBuf::new(),
            entries: Vec::new(),
            browser: TableState::default().with_selected(Some(0)),
            typed: String::new(),
            options: ListState::default().with_selected(Some(0)),
            any_pid: false,
            no_cwd: false,
            no_root: false,
            hits: ui::Hits::new(),
        };
        panel.enter(dir);
        panel
    }

    pub fn help_topic(&self) -> &'static str {
        match self.focus {
            Focus::Path => "path",
            Focus::Browser => "browser",
            Focus::Options => "restart-options",
            _ => "restart",
        }
    }

    pub fn typing(&self) -> bool {
        matches!(self.focus, Focus::Path | Focus::Browser)
    }

    /// Shows directory `dir`, remembered in the path's recall list.
    fn enter(&mut self, dir: PathBuf) {
        self.dir = dir.canonicalize().unwrap_or(dir);
        self.path.text = self.dir.display().to_string();
        self.path.remember();
        self.browser.select(Some(0));
        self.refresh();
    }

    /// Reads the directory again (after a checkpoint or a removal).
    pub fn refresh(&mut self) {
        let mut entries = vec![Entry {
            name: "..".into(),
            is_dir: true,
            statefile: false,
            owner: String::new(),
            modified: String::new(),
        }];
        if let Ok(list) = std::fs::read_dir(&self.dir) {
            let mut found: Vec<Entry> = list.flatten().map(|e| describe(&e.path())).collect();
            found.sort_by(|a, b| (!a.is_dir, &a.name).cmp(&(!b.is_dir, &b.name)));
            entries.extend(found);
        }
        self.entries = entries;
        let last = self.entries.len().saturating_sub(1);
        if self.browser.selected().unwrap_or(0) > last {
            self.browser.select(Some(last));
        }
    }

    fn current(&self) -> Option<&Entry> {
        self.entries.get(self.browser.selected().unwrap_or(0))
    }

    fn chosen_statefile(&self) -> Result<PathBuf, Action> {
        match self.current() {
            Some(e) if e.statefile => Ok(self.dir.join(&e.name)),
            _ => Err(Action::Message(
                "Choose a statefile (marked SF) first".into(),
            )),
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Tab if self.focus != Focus::Path => return self.move_focus(1),
            KeyCode::BackTab => return self.move_focus(ORDER.len() - 1),
            KeyCode::F(5) => return self.restart(),
            KeyCode::F(6) => return self.info(),
            KeyCode::F(8) => return self.remove(),
            _ => {}
        }
        match self.focus {
            Focus::Path => self.path_key(key),
            Focus::Browser => self.browser_key(key),
            Focus::Options => self.option_key(key),
            Focus::Restart if key.code == KeyCode::Enter => self.restart(),
            Focus::Info if key.code == KeyCode::Enter => self.info(),
            Focus::Remove if key.code == KeyCode::Enter => self.remove(),
            _ => Action::None,
        }
    }

    /// A click focuses the widget under the pointer and chooses the entry there (a second
    /// click opens it, or changes the option); buttons act; the wheel scrolls.
    pub fn mouse(&mut self, kind: MouseEventKind, col: u16, row: u16) -> Action {
        let Some((focus, area)) = self.hits.at(col, row) else {
            return Action::None;
        };
        let was_focused = self.focus == focus;
        self.focus = focus;
        match kind {
            MouseEventKind::ScrollDown => return self.key(KeyEvent::from(KeyCode::Down)),
            MouseEventKind::ScrollUp => return self.key(KeyEvent::from(KeyCode::Up)),
            MouseEventKind::Down(MouseButton::Left) => {}
            _ => return Action::None,
        }
        match focus {
            Focus::Browser => {
                let offset = self.browser.offset();
                if let Some(i) =
                    ui::item_at(area, row, 2, offset).filter(|&i| i < self.entries.len())
                {
                    if was_focused && self.browser.selected() == Some(i) {
                        return self.open_current();
                    }
                    self.browser.select(Some(i));
                }
            }
            Focus::Options => {
                if let Some(i) = ui::item_at(area, row, 1, self.options.offset()).filter(|&i| i < 3)
                {
                    if was_focused && self.options.selected() == Some(i) {
                        return self.option_key(KeyEvent::from(KeyCode::Char(' ')));
                    }
                    self.options.select(Some(i));
                }
            }
            Focus::Restart => return self.restart(),
            Focus::Info => return self.info(),
            Focus::Remove => return self.remove(),
            Focus::Path => {}
        }
        Action::None
    }

    fn move_focus(&mut self, step: usize) -> Action {
        let at = ORDER.iter().position(|&f| f == self.focus).unwrap_or(0);
        self.focus = ORDER[(at + step) % ORDER.len()];
        Action::None
    }

    fn path_key(&mut self, key: KeyEvent) -> Action {
        match self.path.key(key) {
            FieldKey::Done => {
                let dir = PathBuf::from(self.path.text.trim());
                if dir.is_dir() {
                    self.enter(dir);
                    self.focus = Focus::Browser;
                    Action::None
                } else {
                    Action::Error(format!("cview: {}: not a directory", dir.display()))
                }
            }
            FieldKey::Ignored if key.code == KeyCode::Tab => self.move_focus(1),
            _ => Action::None,
        }
    }

    fn browser_key(&mut self, key: KeyEvent) -> Action {
        let at = self.browser.selected().unwrap_or(0);
        let last = self.entries.len().saturating_sub(1);
        let to = match key.code {
            KeyCode::Up => at.saturating_sub(1),
            KeyCode::Down => (at + 1).min(last),
            KeyCode::PageUp => at.saturating_sub(10),
            KeyCode::PageDown => (at + 10).min(last),
            KeyCode::Home => 0,
            KeyCode::End => last,
            KeyCode::Enter => {
                self.typed.clear();
                return self.open_current();
            }
            KeyCode::Backspace => {
                self.typed.clear();
                let parent = self.dir.parent().map(Path::to_path_buf);
                if let Some(parent) = parent {
                    self.enter(parent);
                }
                return Action::None;
            }
            KeyCode::Char(c) => {
                self.typed.push(c);
                match self
                    .entries
                    .iter()
                    .position(|e| e.name.starts_with(&self.typed))
                {
                    Some(i) => i,
                    None => {
                        self.typed = c.to_string();
                        self.entries
                            .iter()
                            .position(|e| e.name.starts_with(c))
                            .unwrap_or(at)
                    }
                }
            }
            _ => return Action::None,
        };
        if !matches!(key.code, KeyCode::Char(_)) {
            self.typed.clear();
        }
        self.browser.select(Some(to));
        Action::None
    }

    /// Enter: a directory opens, a statefile tells more.
    fn open_current(&mut self) -> Action {
        let Some(entry) = self.current() else {
            return Action::None;
        };
        if entry.statefile {
            return self.info();
        }
        if entry.is_dir {
            let dir = if entry.name == ".." {
                self.dir
                    .parent()
                    .map_or_else(|| self.dir.clone(), Path::to_path_buf)
            } else {
                self.dir.join(&entry.name)
            };
            self.enter(dir);
        }
        Action::None
    }

    fn option_key(&mut self, key: KeyEvent) -> Action {
        let at = self.options.selected().unwrap_or(0);
        match key.code {
            KeyCode::Up => self.options.select(Some(at.saturating_sub(1))),
            KeyCode::Down => self.options.select(Some((at + 1).min(2))),
            KeyCode::Char(' ') | KeyCode::Enter => match at {
                0 => self.any_pid = !self.any_pid,
                1 => self.no_cwd = !self.no_cwd,
                _ => self.no_root = !self.no_root,
            },
            _ => {}
        }
        Action::None
    }

    /// Restart, as `cpr -r [--any-pid] [--no-cwd] [--no-root] STATEFILE`.
    fn restart(&mut self) -> Action {
        let path = match self.chosen_statefile() {
            Ok(p) => p,
            Err(a) => return a,
        };
        Action::Run(Request::Restart {
            statefile: path,
            any_pid: self.any_pid,
            no_cwd: self.no_cwd,
            no_root: self.no_root,
        })
    }

    /// Tell me more: what `cpr -i` shows.
    fn info(&mut self) -> Action {
        let path = match self.chosen_statefile() {
            Ok(p) => p,
            Err(a) => return a,
        };
        match Statefile::open(&path, Verify::Sizes) {
            Ok(sf) => Action::Show(
                format!("Tell me more: {}", path.display()),
                cpr::statefile::info::render_text(&sf),
            ),
            Err(e) => Action::Error(format!("cpr: {e}")),
        }
    }

    fn remove(&mut self) -> Action {
        match self.chosen_statefile() {
            Ok(p) => Action::ConfirmRemove(p),
            Err(a) => a,
        }
    }

    pub fn draw(&mut self, frame: &mut Frame, area: Rect) {
        let [path, list, options, buttons] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(5),
            Constraint::Length(5),
            Constraint::Length(1),
        ])
        .areas(area);
        self.hits.clear();
        self.hits.add(Focus::Path, path);
        self.hits.add(Focus::Browser, list);
        self.hits.add(Focus::Options, options);
        let labels = ["Restart (F5)", "Tell me more (F6)", "Remove (F8)"];
        for (focus, r) in [Focus::Restart, Focus::Info, Focus::Remove]
            .into_iter()
            .zip(ui::button_areas(buttons, &labels, 1))
        {
            self.hits.add(focus, r);
        }
        let line = ui::field_line(
            "Directory: ",
            &self.path.text,
            self.focus == Focus::Path,
            path.width,
        );
        frame.render_widget(Paragraph::new(line), path);
        self.draw_browser(frame, list);
        let mark = |on: bool| if on { "[x]" } else { "[ ]" };
        let items = [
            format!("{} Any process ID (--any-pid)", mark(self.any_pid)),
            format!(
                "{} Do not restore working directory (--no-cwd)",
                mark(self.no_cwd)
            ),
            format!(
                "{} Do not restore root directory (--no-root)",
                mark(self.no_root)
            ),
        ];
        let list = List::new(items.into_iter().map(ListItem::new))
            .block(ui::panel_block(
                " Restart options ",
                self.focus == Focus::Options,
            ))
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol(">");
        frame.render_stateful_widget(list, options, &mut self.options);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                ui::button("Restart (F5)", self.focus == Focus::Restart),
                Span::raw(" "),
                ui::button("Tell me more (F6)", self.focus == Focus::Info),
                Span::raw(" "),
                ui::button("Remove (F8)", self.focus == Focus::Remove),
            ])),
            buttons,
        );
    }

    fn draw_browser(&mut self, frame: &mut Frame, area: Rect) {
        let rows: Vec<Row> = self
            .entries
            .iter()
            .map(|e| {
                let kind = if e.statefile {
                    "SF"
                } else if e.is_dir {
                    "dir"
                } else {
                    ""
                };
                let name = if e.is_dir && !e.statefile && e.name != ".." {
                    format!("{}/", e.name)
                } else {
                    e.name.clone()
                };
                Row::new(vec![
                    kind.to_string(),
                    name,
                    e.owner.clone(),
                    e.modified.clone(),
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(3),
            Constraint::Min(20),
            Constraint::Length(10),
            Constraint::Length(16),
        ];
        let table = ui::list_table(
            rows,
            widths,
            ["", "NAME", "OWNER", "MODIFIED"],
            " Files and statefiles (SF) ",
            self.focus == Focus::Browser,
        );
        frame.render_stateful_widget(table, area, &mut self.browser);
    }
}

/// A browser line: name, whether a directory and a statefile, owner, time of change.
fn describe(path: &Path) -> Entry {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let meta = std::fs::metadata(path).ok();
    let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
    Entry {
        name,
        is_dir,
        statefile: is_dir && reader::probe(path).is_ok(),
        owner: meta
            .as_ref()
            .map(|m| procs::user_name(m.uid()))
            .unwrap_or_default(),
        modified: meta
            .and_then(|m| m.modified().ok())
            .map(|t| {
                DateTime::<Local>::from(t)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default(),
    }
}
