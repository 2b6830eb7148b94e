//! The checkpoint panel (guide, Appendix A, Steps I-III): whose processes, which of them
//! and how (PID, GID, SID, HID, SGP), the statefile name, the options and the FILE
//! disposition of each file. The choices become an attribute file's blocks, appended to
//! the user's own, and the same `CheckpointOptions` that `cpr -c` builds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, TableState};

use cpr::attrfile::{AttrFile, DirAction, FileAction, ForkAction, WillAction};
use cpr::target::{Designator, IdType, TargetSet};

use crate::field::{Field, FieldKey};
use crate::job::Request;
use crate::procs::{self, FileRow, ProcRow};
use crate::ui::{self, Action};

const TYPES: [IdType; 5] = [
    IdType::Pid,
    IdType::Gid,
    IdType::Sid,
    IdType::Hid,
    IdType::Sgp,
];
const ACTIONS: [FileAction; 5] = [
    FileAction::Merge,
    FileAction::Ignore,
    FileAction::Append,
    FileAction::Replace,
    FileAction::Substitute,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    User,
    Processes,
    Type,
    Options,
    Files,
    Statefile,
    Ok,
    Cancel,
}

const ORDER: [Focus; 8] = [
    Focus::Processes,
    Focus::Type,
    Focus::Options,
    Focus::Files,
    Focus::Statefile,
    Focus::Ok,
    Focus::Cancel,
    Focus::User,
];

/// The options of Step III. `None`: as the attribute file says.
#[derive(Debug, Clone, Default)]
struct Choices {
    will: Option<WillAction>,
    upgrade: bool,
    fork: Option<ForkAction>,
    cdir: Option<DirAction>,
    rdir: Option<DirAction>,
    force: bool,
    /// FILE dispositions set one by one: (pid, path) → action.
    files: BTreeMap<(i32, String), FileAction>,
}

pub struct CheckpointPanel {
    caller: u32,
    pub focus: Focus,
    user: Field,
    uid: u32,
    all: BTreeMap<i32, ProcRow>,
    filter: String,
    tree: bool,
    procs: TableState,
    id_type: IdType,
    /// What the chosen process and type take in, as cpr resolves it (or why not).
    set: Result<TargetSet, String>,
    files: Vec<FileRow>,
    files_state: TableState,
    options: ListState,
    choices: Choices,
    statefile: Field,
    /// The user's attribute file ($HOME/.cpr or the built-in defaults).
    base: AttrFile,
    /// Where the widgets and the process types were drawn, for the mouse.
    hits: ui::Hits<Focus>,
    type_hits: ui::Hits<IdType>,
}

impl CheckpointPanel {
    pub fn new() -> (CheckpointPanel, Option<String>) {
        let caller = cpr::ops::caller_uid();
        let (base, problem) = match AttrFile::load_default() {
            Ok(a) => (a, None),
            Err(e) => (AttrFile::builtin(), Some(e.to_string())),
        };
        let mut panel = CheckpointPanel {
            caller,
            focus: Focus::Processes,
            user: Field::new(&procs::user_name(caller), false),
            uid: caller,
            all: BTreeMap::new(),
            filter: String::new(),
            tree: false,
            procs: TableState::default().with_selected(Some(0)),
            id_type: IdType::Pid,
            set: Err(String::new()),
            files: Vec::new(),
            files_state: TableState::default().with_selected(Some(0)),
            options: ListState::default().with_selected(Some(0)),
            choices: Choices::default(),
            statefile: Field::new("", true),
            base,
            hits: ui::Hits::new(),
            type_hits: ui::Hits::new(),
        };
        panel.user.remember();
        panel.refresh();
        (panel, problem)
    }

    pub fn help_topic(&self) -> &'static str {
        match self.focus {
            Focus::User => "user",
            Focus::Processes => "processes",
            Focus::Type => "type",
            Focus::Options => "options",
            Focus::Files => "files",
            Focus::Statefile => "statefile",
            Focus::Ok | Focus::Cancel => "checkpoint",
        }
    }

    /// Whether keys go to a text field (so `?` is a character there).
    pub fn typing(&self) -> bool {
        matches!(
            self.focus,
            Focus::User | Focus::Statefile | Focus::Processes
        )
    }

    /// Reads the processes again and everything that follows from them; the chosen
    /// process stays chosen while it exists.
    pub fn refresh(&mut self) {
        let chosen = self.chosen().map(|r| r.pid);
        self.all = procs::scan();
        if let Some(i) = chosen.and_then(|pid| self.visible().iter().position(|r| r.pid == pid)) {
            self.procs.select(Some(i));
        }
        self.resolve();
    }

    fn visible(&self) -> Vec<ProcRow> {
        procs::rows_of(&self.all, self.uid, self.tree)
            .into_iter()
            .filter(|r| r.matches(&self.filter))
            .collect()
    }

    fn chosen(&self) -> Option<ProcRow> {
        let rows = self.visible();
        rows.get(
            self.procs
                .selected()
                .unwrap_or(0)
                .min(rows.len().saturating_sub(1)),
        )
        .cloned()
    }

    /// The chosen process as a designator of the chosen type, or why there is none.
    fn designator(&self) -> Result<Designator, String> {
        let row = self.chosen().ok_or("no process chosen")?;
        let id = match self.id_type {
            IdType::Gid => row.pgid(),
            IdType::Sid => row.sid(),
            _ => row.pid,
        };
        // as the user would type it, through cpr's own parser
        cpr::target::parse_designator(&format!("{id}:{}", self.id_type))
            .map_err(|e| format!("cpr: {e}"))
    }

    /// Resolves the designator as `cpr -c` does (same function, same permission rules),
    /// then lists the files of what it takes in with their dispositions.
    fn resolve(&mut self) {
        self.set = match self.designator() {
            Err(e) => Err(e),
            Ok(d) if procs::takes_in_me(&d) => Err(format!(
                "cpr: -p {d}: Invalid argument: it takes in cview itself (PID {})",
                std::process::id()
            )),
            Ok(d) => cpr::target::resolve(&[d], self.caller).map_err(|e| format!("cpr: {e}")),
        };
        self.refresh_files();
    }

    fn refresh_files(&mut self) {
        self.files = match (&self.set, self.attributes()) {
            (Ok(set), Ok(attrs)) => procs::files_of(&set.processes, &self.all, &attrs),
            _ => Vec::new(),
        };
    }

    /// The cview blocks of the attribute file: per process taken in, what was chosen.
    pub fn choices_text(&self) -> String {
        match &self.set {
            Ok(set) => choices_text(&set.pids(), &self.choices),
            Err(_) => choices_text(&[], &self.choices),
        }
    }

    /// What the files list shows: the user's attribute file (or, when it does not
    /// read, the defaults) with the panel's blocks after it.
    fn attributes(&self) -> Result<AttrFile, String> {
        append(self.base.clone(), &self.choices_text()).map_err(|e| format!("cpr: {e}"))
    }

    /// The checkpoint the panel stands for, as `cpr -c STATEFILE -p ID:TYPE [-f] [-g|-k]
    /// [-u]` with the attribute file above.
    fn request(&self, statefile: &str) -> Result<Request, Action> {
        if let Err(e) = &self.set {
            return Err(Action::Error(e.clone()));
        }
        let Ok(d) = self.designator() else {
            return Err(Action::Message("Choose a process first (Step I)".into()));
        };
        if let Err(e) = with_choices(&self.choices_text()) {
            return Err(Action::Error(format!("cpr: {e}")));
        }
        let will = match self.choices.will {
            Some(w @ (WillAction::Cont | WillAction::Kill)) => Some(w),
            _ => None,
        };
        Ok(Request::Checkpoint {
            statefile: statefile.into(),
            idlist: d.to_string(),
            force: self.choices.force,
            will,
            upgrade: self.choices.upgrade,
            choices: self.choices_text(),
        })
    }

    /// OK: the checkpoint, run by the helper.
    fn ok(&mut self) -> Action {
        let name = self.statefile.text.trim().to_string();
        if name.is_empty() {
            self.focus = Focus::Statefile;
            return Action::Message("Name the statefile first (Step II)".into());
        }
        match self.request(&name) {
            Ok(request) => {
                self.statefile.remember();
                Action::Run(request)
            }
            Err(action) => action,
        }
    }

    /// F7: what the checkpoint would take in and whether it would succeed, found without
    /// stopping the processes (`cpr -c --dry-run`).
    fn preview(&self) -> Action {
        let name = self.statefile.text.trim();
        let name = if name.is_empty() { "(statefile)" } else { name };
        let options = match self
            .request(name)
            .and_then(|r| r.checkpoint_options().map_err(Action::Error))
        {
            Ok(o) => o,
            Err(action) => return action,
        };
        let preview = match cpr::ops::preview(&options) {
            Ok(p) => p,
            Err(e) => cpr::ops::Preview::failed(&options.statefile, &e),
        };
        Action::Show(
            format!("Preview (dry run) of -p {}", options.idlist),
            preview.render_text(),
        )
    }

    /// Cancel: every choice goes back to what the attribute file says.
    fn cancel(&mut self) -> Action {
        self.choices = Choices::default();
        self.statefile.text.clear();
        self.refresh_files();
        Action::Message("Choices dropped".into())
    }

    pub fn key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Tab => return self.move_focus(1),
            KeyCode::BackTab => return self.move_focus(ORDER.len() - 1),
            KeyCode::F(4) => {
                self.tree = !self.tree;
                self.resolve();
                return Action::None;
            }
            KeyCode::F(5) => return self.ok(),
            KeyCode::F(6) => {
                return Action::Show("Attribute file: your choices".into(), self.choices_text());
            }
            KeyCode::F(7) => return self.preview(),
            KeyCode::Esc => return self.cancel(),
            _ => {}
        }
        match self.focus {
            Focus::User => self.user_key(key),
            Focus::Processes => self.process_key(key),
            Focus::Type => self.type_key(key),
            Focus::Options => self.option_key(key),
            Focus::Files => self.file_key(key),
            Focus::Statefile => match self.statefile.key(key) {
                FieldKey::Done => self.ok(),
                FieldKey::Ignored if key.code == KeyCode::Tab => self.move_focus(1),
                _ => Action::None,
            },
            Focus::Ok if key.code == KeyCode::Enter => self.ok(),
            Focus::Cancel if key.code == KeyCode::Enter => self.cancel(),
            _ => Action::None,
        }
    }

    /// A click focuses the widget under the pointer and chooses the row, type or button
    /// there (a second click on a chosen option changes it); the wheel scrolls.
    pub fn mouse(&mut self, kind: MouseEventKind, col: u16, row: u16) -> Action {
        if let Some((t, _)) = self.type_hits.at(col, row)
            && kind == MouseEventKind::Down(MouseButton::Left)
        {
            self.focus = Focus::Type;
            self.id_type = t;
            self.resolve();
            return Action::None;
        }
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
            Focus::Processes => {
                let count = self.visible().len();
                if let Some(i) =
                    ui::item_at(area, row, 2, self.procs.offset()).filter(|&i| i < count)
                {
                    self.procs.select(Some(i));
                    self.resolve();
                }
            }
            Focus::Files => {
                let offset = self.files_state.offset();
                if let Some(i) = ui::item_at(area, row, 2, offset).filter(|&i| i < self.files.len())
                {
                    self.files_state.select(Some(i));
                }
            }
            Focus::Options => {
                if let Some(i) = ui::item_at(area, row, 1, self.options.offset()).filter(|&i| i < 6)
                {
                    if was_focused && self.options.selected() == Some(i) {
                        return self.option_key(KeyEvent::from(KeyCode::Char(' ')));
                    }
                    self.options.select(Some(i));
                }
            }
            Focus::Ok => return self.ok(),
            Focus::Cancel => return self.cancel(),
            _ => {}
        }
        Action::None
    }

    fn move_focus(&mut self, step: usize) -> Action {
        let at = ORDER.iter().position(|&f| f == self.focus).unwrap_or(0);
        self.focus = ORDER[(at + step) % ORDER.len()];
        Action::None
    }

    fn user_key(&mut self, key: KeyEvent) -> Action {
        if self.caller != 0 {
            return Action::Message("Only root may show another user's processes".into());
        }
        if self.user.key(key) != FieldKey::Done {
            return Action::None;
        }
        match procs::uid_of(self.user.text.trim()) {
            Some(uid) => {
                self.uid = uid;
                self.user.remember();
                self.procs.select(Some(0));
                self.refresh();
                Action::None
            }
            None => Action::Error(format!("cview: {}: no such user", self.user.text.trim())),
        }
    }

    fn process_key(&mut self, key: KeyEvent) -> Action {
        let count = self.visible().len();
        let at = self.procs.selected().unwrap_or(0);
        let to = match key.code {
            KeyCode::Up => at.saturating_sub(1),
            KeyCode::Down => (at + 1).min(count.saturating_sub(1)),
            KeyCode::PageUp => at.saturating_sub(5),
            KeyCode::PageDown => (at + 5).min(count.saturating_sub(1)),
            KeyCode::Home => 0,
            KeyCode::End => count.saturating_sub(1),
            KeyCode::Backspace => {
                self.filter.pop();
                self.all = procs::scan();
                0
            }
            KeyCode::Char(c) => {
                self.filter.push(c);
                self.all = procs::scan();
                0
            }
            KeyCode::Enter => {
                self.focus = Focus::Type;
                return Action::None;
            }
            _ => return Action::None,
        };
        self.procs.select(Some(to));
        self.resolve();
        Action::None
    }

    fn type_key(&mut self, key: KeyEvent) -> Action {
        let at = TYPES.iter().position(|&t| t == self.id_type).unwrap_or(0);
        self.id_type = match key.code {
            KeyCode::Left => TYPES[(at + TYPES.len() - 1) % TYPES.len()],
            KeyCode::Right | KeyCode::Char(' ') => TYPES[(at + 1) % TYPES.len()],
            KeyCode::Char('p') => IdType::Pid,
            KeyCode::Char('g') => IdType::Gid,
            KeyCode::Char('s') => IdType::Sid,
            KeyCode::Char('h') => IdType::Hid,
            KeyCode::Char('S') => IdType::Sgp,
            KeyCode::Char('j' | 'a') => {
                return Action::Message("JID and ASH are IRIX IDs: Linux has no such thing".into());
            }
            _ => return Action::None,
        };
        self.resolve();
        Action::None
    }

    fn option_key(&mut self, key: KeyEvent) -> Action {
        let at = self.options.selected().unwrap_or(0);
        match key.code {
            KeyCode::Up => self.options.select(Some(at.saturating_sub(1))),
            KeyCode::Down => self.options.select(Some((at + 1).min(5))),
            KeyCode::Char(' ') | KeyCode::Enter => {
                let c = &mut self.choices;
                match at {
                    0 => {
                        c.will = match c.will {
                            None => Some(WillAction::Exit),
                            Some(WillAction::Exit) => Some(WillAction::Cont),
                            Some(WillAction::Cont) => Some(WillAction::Kill),
                            Some(WillAction::Kill) => None,
                        }
                    }
                    1 => c.upgrade = !c.upgrade,
                    2 => c.fork = cycle(c.fork, ForkAction::Original, ForkAction::Any),
                    3 => c.cdir = cycle(c.cdir, DirAction::Replace, DirAction::Ignore),
                    4 => c.rdir = cycle(c.rdir, DirAction::Replace, DirAction::Ignore),
                    _ => c.force = !c.force,
                }
            }
            _ => {}
        }
        Action::None
    }

    fn file_key(&mut self, key: KeyEvent) -> Action {
        let at = self.files_state.selected().unwrap_or(0);
        let action = match key.code {
            KeyCode::Up => {
                self.files_state.select(Some(at.saturating_sub(1)));
                return Action::None;
            }
            KeyCode::Down => {
                self.files_state
                    .select(Some((at + 1).min(self.files.len().saturating_sub(1))));
                return Action::None;
            }
            KeyCode::Char('m') => Some(FileAction::Merge),
            KeyCode::Char('i') => Some(FileAction::Ignore),
            KeyCode::Char('a') => Some(FileAction::Append),
            KeyCode::Char('r') => Some(FileAction::Replace),
            KeyCode::Char('s') => Some(FileAction::Substitute),
            KeyCode::Char(' ') => {
                let now = self.files.get(at).map_or(FileAction::Merge, |f| f.action);
                let i = ACTIONS.iter().position(|&a| a == now).unwrap_or(0);
                Some(ACTIONS[(i + 1) % ACTIONS.len()])
            }
            KeyCode::Char('d') => None,
            _ => return Action::None,
        };
        let Some(file) = self.files.get(at) else {
            return Action::None;
        };
        if file.fd.is_none() {
            return Action::Message(
                "FILE applies to open files; a mapped file is mapped again as it is at restart"
                    .into(),
            );
        }
        if file.path.contains('"') {
            return Action::Error(format!(
                "cview: {}: a FILE rule cannot name a path with a double quote",
                file.path
            ));
        }
        let key = (file.pid, file.path.clone());
        match action {
            Some(a) => self.choices.files.insert(key, a),
            None => self.choices.files.remove(&key),
        };
        self.refresh_files();
        Action::None
    }
}

/// The attribute-file blocks of the choices: one `CKPT PID` block per process that has
/// any, with its FILE lines (the path as an exact glob) and WILL EXIT, FORK, CDIR, RDIR.
fn choices_text(pids: &[i32], c: &Choices) -> String {
    let mut out = String::from("# cview: the choices of the checkpoint panel\n");
    for &pid in pids {
        let mut lines = String::new();
        for ((p, path), action) in &c.files {
            if *p == pid {
                let pattern = glob::Pattern::escape(path);
                let _ = writeln!(lines, "    FILE: \"{pattern}\": {}", upper(action));
            }
        }
        if c.will == Some(WillAction::Exit) {
            let _ = writeln!(lines, "    WILL: EXIT");
        }
        if let Some(f) = c.fork {
            let _ = writeln!(lines, "    FORK: {}", upper(&f));
        }
        if let Some(d) = c.cdir {
            let _ = writeln!(lines, "    CDIR: {}", upper(&d));
        }
        if let Some(d) = c.rdir {
            let _ = writeln!(lines, "    RDIR: {}", upper(&d));
        }
        if !lines.is_empty() {
            let _ = write!(out, "CKPT PID {pid} {{\n{lines}}}\n");
        }
    }
    out
}

/// What a checkpoint from the panel uses: the user's attribute file, as `cpr -c` reads
/// it, with the panel's blocks after it.
pub fn with_choices(choices: &str) -> cpr::Result<AttrFile> {
    append(AttrFile::load_default()?, choices)
}

/// `base` with the blocks of `choices` after its own: later blocks of the same
/// precedence win, exactly as if the text were appended to the file.
fn append(mut base: AttrFile, choices: &str) -> cpr::Result<AttrFile> {
    let extra = AttrFile::parse(choices, "cview choices")?;
    base.source = format!("{} + cview choices", base.source);
    base.blocks.extend(extra.blocks);
    Ok(base)
}

fn cycle<T: Copy + PartialEq>(now: Option<T>, first: T, second: T) -> Option<T> {
    match now {
        None => Some(first),
        Some(v) if v == first => Some(second),
        Some(_) => None,
    }
}

/// `MERGE`, `CONT`, `ORIGINAL`: a policy value as the attribute file spells it.
pub fn upper<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?}").to_uppercase()
}

fn shown<T: std::fmt::Debug>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "attr".to_string(), upper)
}

impl CheckpointPanel {
    pub fn draw(&mut self, frame: &mut Frame, area: Rect) {
        let [top, list, takes, bottom, name, buttons] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(5),
            Constraint::Length(1),
            Constraint::Length(7),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let [files, options] =
            Layout::horizontal([Constraint::Min(30), Constraint::Length(30)]).areas(bottom);
        self.hits.clear();
        self.hits.add(Focus::User, Rect { width: 22, ..top });
        self.hits.add(Focus::Processes, list);
        self.hits.add(Focus::Files, files);
        self.hits.add(Focus::Options, options);
        self.hits.add(Focus::Statefile, name);
        let [ok, cancel] = ui::button_areas(buttons, &["OK (F5)", "Cancel (Esc)"], 2)[..] else {
            return;
        };
        self.hits.add(Focus::Ok, ok);
        self.hits.add(Focus::Cancel, cancel);
        self.draw_top(frame, top);
        self.draw_processes(frame, list);
        self.draw_takes_in(frame, takes);
        self.draw_files(frame, files);
        self.draw_options(frame, options);
        let field = ui::field_line(
            "Statefile: ",
            &self.statefile.text,
            self.focus == Focus::Statefile,
            name.width,
        );
        frame.render_widget(Paragraph::new(field), name);
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                ui::button("OK (F5)", self.focus == Focus::Ok),
                Span::raw("  "),
                ui::button("Cancel (Esc)", self.focus == Focus::Cancel),
                Span::raw("  F6 attr file  F7 preview"),
            ])),
            buttons,
        );
    }

    fn draw_top(&mut self, frame: &mut Frame, area: Rect) {
        let mut spans =
            ui::field_line("User: ", &self.user.text, self.focus == Focus::User, 22).spans;
        spans.push(Span::styled(
            "  Type:",
            ui::label_style(self.focus == Focus::Type),
        ));
        self.type_hits.clear();
        let mut x = area.x + spans.iter().map(|s| s.width() as u16).sum::<u16>();
        for t in TYPES {
            self.type_hits
                .add(t, Rect::new(x + 1, area.y, 3, 1).intersection(area));
            x += 4;
            let style = if t == self.id_type {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            spans.push(Span::raw(" "));
            spans.push(Span::styled(t.name(), style));
        }
        spans.push(Span::raw(if self.tree {
            "  View: tree"
        } else {
            "  View: list"
        }));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn draw_processes(&mut self, frame: &mut Frame, area: Rect) {
        let set = self.set.as_ref().ok();
        let rows: Vec<Row> = self
            .visible()
            .iter()
            .map(|r| {
                let mark = if set.is_some_and(|s| s.processes.contains_key(&r.pid)) {
                    "*"
                } else {
                    " "
                };
                Row::new(vec![
                    Cell::from(mark),
                    Cell::from(r.user.clone()),
                    Cell::from(r.pid.to_string()),
                    Cell::from(r.ppid.to_string()),
                    Cell::from(r.pgid().to_string()),
                    Cell::from(r.sid().to_string()),
                    Cell::from(format!("{}{}", "  ".repeat(r.depth), r.command)),
                ])
            })
            .collect();
        let title = if self.focus == Focus::User {
            let earlier: Vec<&str> = self.user.earlier().collect();
            format!(
                " Processes of {} (Up/Down recall: {}) ",
                self.user.text,
                earlier.join(" ")
            )
        } else if self.filter.is_empty() {
            " Processes (type to filter) ".to_string()
        } else {
            format!(" Processes (filter: {}) ", self.filter)
        };
        let widths = [
            Constraint::Length(1),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Min(10),
        ];
        let table = ui::list_table(
            rows,
            widths,
            ["", "USER", "PID", "PPID", "PGID", "SID", "COMMAND"],
            &title,
            self.focus == Focus::Processes,
        );
        frame.render_stateful_widget(table, area, &mut self.procs);
    }

    fn draw_takes_in(&self, frame: &mut Frame, area: Rect) {
        let text = match (&self.set, self.designator()) {
            (Ok(set), Ok(d)) => {
                let pids: Vec<String> = set.pids().iter().map(i32::to_string).collect();
                format!(
                    "-p {d} takes in {} process(es): {}",
                    pids.len(),
                    pids.join(" ")
                )
            }
            (Err(e), _) => e.clone(),
            _ => String::new(),
        };
        frame.render_widget(Paragraph::new(ui::clip(&text, area.width)), area);
    }

    fn draw_files(&mut self, frame: &mut Frame, area: Rect) {
        let rows: Vec<Row> = self
            .files
            .iter()
            .map(|f| {
                Row::new(vec![
                    f.pid.to_string(),
                    f.fd.map_or_else(|| "map".to_string(), |fd| fd.to_string()),
                    ui::clip_left(&f.path, area.width.saturating_sub(30)),
                    // the engine applies FILE to descriptors; a mapped file is reopened
                    if f.fd.is_some() {
                        upper(&f.action)
                    } else {
                        "(mapped)".into()
                    },
                ])
            })
            .collect();
        let widths = [
            Constraint::Length(7),
            Constraint::Length(4),
            Constraint::Min(10),
            Constraint::Length(11),
        ];
        let table = ui::list_table(
            rows,
            widths,
            ["PID", "FD", "FILE", "DISPOSITION"],
            " Files (m i a r s d) ",
            self.focus == Focus::Files,
        );
        frame.render_stateful_widget(table, area, &mut self.files_state);
    }

    fn draw_options(&mut self, frame: &mut Frame, area: Rect) {
        let c = &self.choices;
        let will = match c.will {
            None => "attr".to_string(),
            Some(WillAction::Exit) => "exit".into(),
            Some(WillAction::Cont) => "continue (-g)".into(),
            Some(WillAction::Kill) => "kill (-k)".into(),
        };
        let items = [
            format!("After:   {will}"),
            format!("Upgrade: {}", if c.upgrade { "yes (-u)" } else { "no" }),
            format!("FORK:    {}", shown(&c.fork)),
            format!("CDIR:    {}", shown(&c.cdir)),
            format!("RDIR:    {}", shown(&c.rdir)),
            format!("Replace: {}", if c.force { "yes (-f)" } else { "no" }),
        ];
        let list = List::new(items.into_iter().map(ListItem::new))
            .block(ui::panel_block(" Options ", self.focus == Focus::Options))
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol(">");
        frame.render_stateful_widget(list, area, &mut self.options);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpr::target::ProcessIds;
    use std::path::Path;

    fn process(pid: i32) -> ProcessIds {
        ProcessIds {
            pid,
            ppid: 1,
            pgid: pid,
            sid: pid,
            uids: [0; 4],
            gids: [0; 4],
            tids: vec![pid],
        }
    }

    /// The blocks parse and win over the user's file, as lines appended to it would.
    #[test]
    fn choices_reach_the_policies_as_an_attribute_file() {
        let mut c = Choices {
            fork: Some(ForkAction::Any),
            cdir: Some(DirAction::Ignore),
            ..Choices::default()
        };
        c.files
            .insert((10, "/data/odd [name]*.log".into()), FileAction::Replace);
        let text = choices_text(&[10, 11], &c);
        let base = AttrFile::parse(
            "CKPT * { FILE: APPEND\n FORK: ORIGINAL }\nCKPT PID 10 { CDIR: REPLACE }",
            "user",
        )
        .unwrap();
        let attrs = append(base, &text).unwrap();
        let p10 = attrs.policies_for(&process(10), &[1]);
        assert_eq!(p10.fork, ForkAction::Any);
        assert_eq!(p10.cdir, DirAction::Ignore);
        let odd = Path::new("/data/odd [name]*.log");
        assert_eq!(p10.file_action(odd), FileAction::Replace);
        // the escaped glob names that file only
        assert_eq!(
            p10.file_action(Path::new("/data/odd n.log")),
            FileAction::Append
        );
        let p11 = attrs.policies_for(&process(11), &[1]);
        assert_eq!(p11.file_action(odd), FileAction::Append);
        assert_eq!(p11.fork, ForkAction::Any);
    }

    #[test]
    fn no_choices_no_blocks() {
        let text = choices_text(&[10], &Choices::default());
        assert!(AttrFile::parse(&text, "x").unwrap().blocks.is_empty());
    }
}
