//! cview(1): the full-screen terminal interface of cpr, after IRIX's cview (guide,
//! Appendix A). A checkpoint panel and a restart panel drive the same library calls as
//! `cpr -c`, `-r`, `-i` and `-D`, with the same permission rules; help on every widget
//! with F1 or `?`.

mod checkpoint;
mod field;
mod help;
mod job;
mod procs;
mod restart;
mod ui;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyCode, KeyEvent, KeyEventKind,
    KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Gauge, Paragraph, Wrap};
use ratatui::{DefaultTerminal, Frame};

use checkpoint::CheckpointPanel;
use job::Job;
use restart::RestartPanel;
use ui::Action;

const USAGE: &str = "usage: cview [-r] [DIRECTORY]
  -r          start in the restart panel
  DIRECTORY   where the restart panel starts (default: the working directory)
Keys: F1 or ? help, F2 checkpoint, F3 restart, F10 quit. See cview(1).";

/// The smallest screen cview is laid out for.
const MIN_WIDTH: u16 = 80;
const MIN_HEIGHT: u16 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Checkpoint,
    Restart,
}

/// A screen over the panel, which takes the keys while it is up.
enum Overlay {
    None,
    /// Help or Tell me more: title, text, first line and first column shown.
    Text(String, String, usize, usize),
    /// Remove this statefile? y/n
    Confirm(PathBuf),
    /// An error too long for the message line, whole.
    Error(String),
    Running(Job),
}

struct App {
    panel: Panel,
    checkpoint: CheckpointPanel,
    restart: RestartPanel,
    overlay: Overlay,
    /// The message line: text, whether an error.
    message: (String, bool),
    /// When the process list was last read.
    read_at: std::time::Instant,
    quit: bool,
}

fn main() -> ExitCode {
    let mut panel = Panel::Checkpoint;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--run-job" => return job::serve(),
            "-r" | "--restart" => panel = Panel::Restart,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("cview {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') || dir.is_some() => {
                eprintln!("cview: unexpected argument '{a}'\n{USAGE}");
                return ExitCode::from(2);
            }
            a => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| "/".into()));
    if !dir.is_dir() {
        eprintln!("cview: {}: No such file or directory", dir.display());
        return ExitCode::FAILURE;
    }
    let (checkpoint, problem) = CheckpointPanel::new();
    let mut app = App {
        panel,
        checkpoint,
        restart: RestartPanel::new(dir),
        overlay: Overlay::None,
        message: match problem {
            Some(p) => (format!("cpr: {p} (using the built-in defaults)"), true),
            None => ("F1 or ? for help".into(), false),
        },
        quit: false,
        read_at: std::time::Instant::now(),
    };
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            eprintln!("cview: terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    // the mouse where the terminal has it; without, the keyboard does everything
    let _ = ratatui::crossterm::execute!(io::stdout(), EnableMouseCapture);
    let result = app.run(&mut terminal);
    let _ = ratatui::crossterm::execute!(io::stdout(), DisableMouseCapture);
    ratatui::restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cview: terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

impl App {
    fn run(&mut self, terminal: &mut DefaultTerminal) -> io::Result<()> {
        while !self.quit {
            terminal.draw(|frame| self.draw(frame))?;
            self.tick();
            if event::poll(Duration::from_millis(200))? {
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => self.key(key),
                    Event::Mouse(m) => self.mouse(m),
                    // the next draw lays the screen out for the new size
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// A finished job reports; the processes and the directory are read again now and
    /// then.
    fn tick(&mut self) {
        if let Overlay::Running(job) = &mut self.overlay {
            if let Some(outcome) = job.finished() {
                self.overlay = Overlay::None;
                match outcome {
                    Ok(text) => self.message = (text, false),
                    Err(e) => self.error(e),
                }
                self.checkpoint.refresh();
                self.restart.refresh();
            }
            return;
        }
        if matches!(self.overlay, Overlay::None) && self.read_at.elapsed() > Duration::from_secs(2)
        {
            self.checkpoint.refresh();
            self.restart.refresh();
            self.read_at = std::time::Instant::now();
        }
    }

    fn key(&mut self, key: KeyEvent) {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            if let Overlay::Running(job) = &mut self.overlay {
                self.message = cancel_message(job);
            } else {
                self.quit = true;
            }
            return;
        }
        match &mut self.overlay {
            Overlay::None => {}
            Overlay::Running(job) => {
                if key.code == KeyCode::Esc {
                    self.message = cancel_message(job);
                }
                return;
            }
            Overlay::Confirm(path) => {
                if key.code == KeyCode::Char('y') {
                    let path = path.clone();
                    self.message = match cpr::statefile::remove(&path, cpr::ops::caller_uid()) {
                        Ok(()) => (format!("Removed {}", path.display()), false),
                        Err(e) => (format!("cpr: {e}"), true),
                    };
                    self.restart.refresh();
                } else {
                    self.message = ("Nothing removed".into(), false);
                }
                self.overlay = Overlay::None;
                return;
            }
            Overlay::Error(_) => {
                self.overlay = Overlay::None;
                return;
            }
            Overlay::Text(_, text, top, left) => {
                let lines = text.lines().count();
                match key.code {
                    KeyCode::Left => *left = left.saturating_sub(10),
                    KeyCode::Right => *left += 10,
                    KeyCode::Up => *top = top.saturating_sub(1),
                    KeyCode::Down => *top = (*top + 1).min(lines.saturating_sub(1)),
                    KeyCode::PageUp => *top = top.saturating_sub(15),
                    KeyCode::PageDown => *top = (*top + 15).min(lines.saturating_sub(1)),
                    KeyCode::Home => *top = 0,
                    _ => self.overlay = Overlay::None,
                }
                return;
            }
        }
        self.panel_key(key);
    }

    /// The wheel scrolls a text screen; with no screen up, the panel takes the mouse.
    fn mouse(&mut self, m: MouseEvent) {
        match &mut self.overlay {
            Overlay::None => {}
            Overlay::Text(..) => {
                let code = match m.kind {
                    MouseEventKind::ScrollDown => KeyCode::Down,
                    MouseEventKind::ScrollUp => KeyCode::Up,
                    _ => return,
                };
                self.key(KeyEvent::from(code));
                return;
            }
            _ => return,
        }
        if m.row == 0 && m.kind == MouseEventKind::Down(MouseButton::Left) {
            // the panel bar: "cview ", " F2 Checkpoint ", " F3 Restart "
            match m.column {
                6..=20 => self.panel_key(KeyEvent::from(KeyCode::F(2))),
                21..=32 => self.panel_key(KeyEvent::from(KeyCode::F(3))),
                _ => {}
            }
            return;
        }
        let action = match self.panel {
            Panel::Checkpoint => self.checkpoint.mouse(m.kind, m.column, m.row),
            Panel::Restart => self.restart.mouse(m.kind, m.column, m.row),
        };
        self.act(action);
    }

    fn panel_key(&mut self, key: KeyEvent) {
        let typing = match self.panel {
            Panel::Checkpoint => self.checkpoint.typing(),
            Panel::Restart => self.restart.typing(),
        };
        match key.code {
            KeyCode::F(1) => return self.help(),
            KeyCode::Char('?') if !typing => return self.help(),
            KeyCode::F(2) => {
                self.panel = Panel::Checkpoint;
                self.checkpoint.refresh();
                return;
            }
            KeyCode::F(3) => {
                self.panel = Panel::Restart;
                self.restart.refresh();
                return;
            }
            KeyCode::F(10) => {
                self.quit = true;
                return;
            }
            KeyCode::Char('r') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.checkpoint.refresh();
                self.restart.refresh();
                return;
            }
            _ => {}
        }
        let action = match self.panel {
            Panel::Checkpoint => self.checkpoint.key(key),
            Panel::Restart => self.restart.key(key),
        };
        self.act(action);
    }

    /// An error goes on the message line; one longer than that also on a screen of its own.
    fn error(&mut self, e: String) {
        if e.chars().count() > 2 * MIN_WIDTH as usize {
            self.overlay = Overlay::Error(e.clone());
        }
        self.message = (e, true);
    }

    fn help(&mut self) {
        let (topic, panel) = match self.panel {
            Panel::Checkpoint => (self.checkpoint.help_topic(), "checkpoint"),
            Panel::Restart => (self.restart.help_topic(), "restart"),
        };
        let (title, text) = help::screen(topic, panel);
        self.overlay = Overlay::Text(title.into(), text, 0, 0);
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::None => {}
            Action::Message(m) => self.message = (m, false),
            Action::Error(e) => self.error(e),
            Action::Show(title, text) => self.overlay = Overlay::Text(title, text, 0, 0),
            Action::ConfirmRemove(path) => self.overlay = Overlay::Confirm(path),
            Action::Run(request) => match Job::start(request) {
                Ok(job) => {
                    self.message = (String::new(), false);
                    self.overlay = Overlay::Running(job);
                }
                Err(e) => self.message = (e, true),
            },
        }
    }
}

fn cancel_message(job: &mut Job) -> (String, bool) {
    job.cancel();
    let what = match job.kind {
        job::Kind::Checkpoint => "checkpoint",
        job::Kind::Restart => "restart",
    };
    (format!("Cancelling the {what}..."), false)
}

impl App {
    fn draw(&mut self, frame: &mut Frame) {
        let area = frame.area();
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let text = format!(
                "cview needs a screen of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {}x{}.",
                area.width, area.height
            );
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
            return;
        }
        let [tabs, body, message, hints] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(10),
            Constraint::Length(2),
            Constraint::Length(1),
        ])
        .areas(area);
        self.draw_tabs(frame, tabs);
        match self.panel {
            Panel::Checkpoint => self.checkpoint.draw(frame, body),
            Panel::Restart => self.restart.draw(frame, body),
        }
        let style = if self.message.1 {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        frame.render_widget(
            Paragraph::new(Span::styled(self.message.0.clone(), style)).wrap(Wrap { trim: true }),
            message,
        );
        let keys = match self.panel {
            Panel::Checkpoint => {
                "Tab next  F4 list/tree  F5 OK  F6 attr  F7 preview  Esc cancel  F10 quit"
            }
            Panel::Restart => {
                "Tab next  Enter open  F5 Restart  F6 Tell me more  F8 Remove  F10 quit"
            }
        };
        frame.render_widget(
            Paragraph::new(keys).style(Style::default().add_modifier(Modifier::REVERSED)),
            hints,
        );
        self.draw_overlay(frame, body);
    }

    fn draw_tabs(&self, frame: &mut Frame, area: Rect) {
        let tab = |label: &str, on: bool| {
            if on {
                Span::styled(
                    format!(" {label} "),
                    Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
                )
            } else {
                Span::raw(format!(" {label} "))
            }
        };
        let line = Line::from(vec![
            Span::styled("cview ", Style::default().add_modifier(Modifier::BOLD)),
            tab("F2 Checkpoint", self.panel == Panel::Checkpoint),
            tab("F3 Restart", self.panel == Panel::Restart),
            Span::raw("   F1/? Help"),
        ]);
        frame.render_widget(Paragraph::new(line), area);
    }

    fn draw_overlay(&mut self, frame: &mut Frame, body: Rect) {
        match &mut self.overlay {
            Overlay::None => {}
            Overlay::Text(title, text, top, left) => {
                frame.render_widget(Clear, body);
                let (top, left) = (*top, *left);
                let shown: Vec<Line> = text
                    .lines()
                    .skip(top)
                    .map(|l| Line::raw(l.chars().skip(left).collect::<String>()))
                    .collect();
                let block = Block::bordered()
                    .title(format!(" {title} "))
                    .title_bottom(" arrows, PgUp/PgDn scroll; any other key closes ");
                frame.render_widget(Paragraph::new(shown).block(block), body);
            }
            Overlay::Confirm(path) => {
                let area = ui::centered(body, 70, 5);
                frame.render_widget(Clear, area);
                let text = format!(
                    "Remove the statefile {}?\n\ny: remove   any other key: keep it",
                    path.display()
                );
                frame.render_widget(
                    Paragraph::new(text)
                        .wrap(Wrap { trim: true })
                        .block(Block::bordered().title(" Remove ")),
                    area,
                );
            }
            Overlay::Running(job) => draw_progress(frame, body, job),
            Overlay::Error(e) => {
                let area = ui::centered(body, 76, 10);
                frame.render_widget(Clear, area);
                let block = Block::bordered()
                    .title(" Error ")
                    .title_bottom(" any key closes ");
                frame.render_widget(
                    Paragraph::new(e.as_str())
                        .style(Style::default().fg(Color::Red))
                        .wrap(Wrap { trim: true })
                        .block(block),
                    area,
                );
            }
        }
    }
}

/// The progress box: the phase, a bar of its bytes against what it will move, the rate,
/// and how to cancel.
fn draw_progress(frame: &mut Frame, body: Rect, job: &mut Job) {
    let area = ui::centered(body, 70, 6);
    frame.render_widget(Clear, area);
    let (shown, elapsed) = job.progress();
    let what = match job.kind {
        job::Kind::Checkpoint => "Checkpoint",
        job::Kind::Restart => "Restart",
    };
    let title = if job.cancelled() {
        format!(" {what}: cancelling ")
    } else {
        format!(" {what}: {} ", shown.phase)
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [name, bar, stats] = Layout::vertical([Constraint::Length(1); 3]).areas(inner);
    frame.render_widget(
        Paragraph::new(ui::clip_left(&job.what.display().to_string(), name.width)),
        name,
    );
    let ratio = match shown.total {
        Some(total) if total > 0 => (shown.done as f64 / total as f64).min(1.0),
        _ => 0.0,
    };
    frame.render_widget(Gauge::default().ratio(ratio), bar);
    let of = match shown.total {
        Some(total) => format!(" of {}", job::human(total as f64)),
        None => String::new(),
    };
    let text = format!(
        "{}{of}  {}/s  {:.1} s  Esc cancels",
        job::human(shown.done as f64),
        job::human(shown.rate()),
        elapsed.as_secs_f64()
    );
    frame.render_widget(Paragraph::new(text), stats);
}
